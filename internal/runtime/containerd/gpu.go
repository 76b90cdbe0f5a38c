package containerd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/pkg/cdi"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/berth-dev/berth/internal/runtime"
)

// GPU modes (Config.GPU): what a group asking for GPUs gets on a host that
// has none (or fewer than asked).
const (
	// GPUEmulate runs the container without a GPU and says so in a Warning
	// event on it (templates written for Azure deploy unchanged).
	GPUEmulate = "emulate"
	// GPURefuse fails CreateGroup with an error wrapping
	// runtime.ErrUnsupported.
	GPURefuse = "refuse"
)

// GPUInfo is what the host has in NVIDIA GPUs.
type GPUInfo struct {
	// Count is the number of GPUs the NVIDIA driver shows.
	Count int
	// Models are their model names (as the driver reports them, e.g.
	// "Tesla V100-SXM2-16GB"), one per GPU, in device order; "" where
	// unknown.
	Models []string
	// CDI is whether a CDI specification for nvidia.com/gpu is installed
	// (nvidia-ctk cdi generate): only then can containers get the GPUs.
	CDI bool
}

// Usable reports whether n GPUs can be passed to a container.
func (g GPUInfo) Usable(n int) bool { return g.CDI && n <= g.Count }

// HostGPUs reports the host's NVIDIA GPUs (count, models, CDI), for
// capabilities. Nothing is cached: it reads the host each time.
func HostGPUs() GPUInfo { return detectGPUs("/") }

// cdiDirs are where CDI specifications are installed (CDI's defaults).
var cdiDirs = []string{"etc/cdi", "var/run/cdi"}

var nvidiaDev = regexp.MustCompile(`^nvidia[0-9]+$`)

// detectGPUs reads, under root: the driver's per-GPU information files
// (proc/driver/nvidia/gpus/*/information) for the models, else the
// dev/nvidiaN device nodes for the count; and the CDI directories for a
// specification of kind nvidia.com/gpu.
func detectGPUs(root string) GPUInfo {
	var g GPUInfo
	infos, _ := filepath.Glob(filepath.Join(root, "proc/driver/nvidia/gpus/*/information"))
	slices.Sort(infos) // by PCI bus id: device order
	for _, p := range infos {
		g.Models = append(g.Models, gpuModel(p))
	}
	if len(g.Models) == 0 {
		entries, _ := os.ReadDir(filepath.Join(root, "dev"))
		for _, e := range entries {
			if nvidiaDev.MatchString(e.Name()) {
				g.Models = append(g.Models, "")
			}
		}
	}
	g.Count = len(g.Models)
	for _, d := range cdiDirs {
		entries, _ := os.ReadDir(filepath.Join(root, d))
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if ext != ".json" && ext != ".yaml" && ext != ".yml" {
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, d, e.Name()))
			if err == nil && cdiKindNvidiaGPU(b) {
				g.CDI = true
			}
		}
	}
	return g
}

// cdiKindNvidiaGPU reports whether a CDI specification (JSON or YAML)
// declares kind nvidia.com/gpu.
func cdiKindNvidiaGPU(b []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, tok := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == '{' }) {
			k, v, ok := strings.Cut(strings.TrimSpace(tok), ":")
			if ok && strings.Trim(strings.TrimSpace(k), `"'`) == "kind" &&
				strings.Trim(strings.TrimSpace(v), `"'`) == "nvidia.com/gpu" {
				return true
			}
		}
	}
	return false
}

// gpuModel reads "Model: ..." from a driver information file.
func gpuModel(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Model" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkGPUs refuses a group that asks for more GPUs than the host can give
// when the runtime is configured to refuse.
func (r *Runtime) checkGPUs(spec runtime.GroupSpec) error {
	if r.cfg.GPU != GPURefuse {
		return nil
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.GPUs > 0 && !r.gpus.Usable(c.GPUs) {
			return fmt.Errorf("group %q: container %q requests %d GPU(s); this host has %s: %w",
				spec.ID, c.Name, c.GPUs, r.gpus.describe(), runtime.ErrUnsupported)
		}
	}
	return nil
}

func (g GPUInfo) describe() string {
	switch {
	case g.Count == 0:
		return "no GPU"
	case !g.CDI:
		return strconv.Itoa(g.Count) + " GPU(s) but no CDI specification for nvidia.com/gpu (nvidia-ctk cdi generate)"
	default:
		return strconv.Itoa(g.Count) + " GPU(s)"
	}
}

// gpuOpts passes c's GPUs through with CDI (devices nvidia.com/gpu=0..n-1),
// or, when the host cannot, emits the Warning event saying the container
// runs without them and returns nothing.
func (r *Runtime) gpuOpts(groupID string, c runtime.ContainerSpec) []oci.SpecOpts {
	if c.GPUs <= 0 {
		return nil
	}
	if !r.gpus.Usable(c.GPUs) {
		r.emit(groupID, c.Name, runtime.EventWarning, fmt.Sprintf(
			"Container requests %d GPU(s) but this host has %s: it runs without a GPU", c.GPUs, r.gpus.describe()), true, 0)
		return nil
	}
	devs := make([]string, c.GPUs)
	for i := range devs {
		devs[i] = "nvidia.com/gpu=" + strconv.Itoa(i)
	}
	return []oci.SpecOpts{cdi.WithCDIDevices(devs...)}
}
