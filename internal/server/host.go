package server

import (
	"bufio"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
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
