package server

import (
	"bufio"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/runtime/containerd"
)

// hostCapacity reads the host's cores and memory (for capabilities).
func hostCapacity() aci.HostCapacity {
	hc := aci.HostCapacity{CPUs: goruntime.NumCPU()}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return hc
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			if kb, err := strconv.ParseFloat(fields[1], 64); err == nil {
				hc.MemoryGB = kb / (1 << 20)
			}
		}
	}
	return hc
}

// gpuMode maps --gpu to the runtime's mode ("" is the default, emulate).
func gpuMode(s string) string {
	if s == "refuse" {
		return containerd.GPURefuse
	}
	return containerd.GPUEmulate
}

// hostGPUSKUs counts the host's usable GPUs by ACI SKU (K80, P100, V100),
// from the model names the driver reports; GPUs of other models count as
// none of them (ACI offers no others).
func hostGPUSKUs(info containerd.GPUInfo) map[string]int {
	if info.Count == 0 || !info.CDI {
		return nil
	}
	out := map[string]int{}
	for _, m := range info.Models {
		for _, sku := range []string{"K80", "P100", "V100"} {
			if strings.Contains(strings.ToUpper(m), sku) {
				out[sku]++
			}
		}
	}
	return out
}
