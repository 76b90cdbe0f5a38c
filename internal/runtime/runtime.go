// Package runtime defines how berth runs container groups. The unit is a
// group (a pod): one network namespace with its own address, shared by all of
// the group's containers, which therefore reach each other on localhost.
//
// A Runtime owns everything below the API: pulling images with the group's
// registry credentials, the sandbox (network namespace + address), the
// containers' processes, their logs, and the restart policy (like a kubelet,
// the runtime restarts exited containers as the policy says). What happens
// down there (pulling, started, exited, restarted) comes back up through the
// event stream (Subscribe); the service layer subscribes and never gets
// called by the runtime.
//
// Implementations: runtime/containerd (the product). A Kubernetes
// implementation will follow. runtime/fake is an in-memory implementation for
// unit tests of the layers above.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// Error classes. Implementations wrap them (fmt.Errorf("...: %w", ErrX)) so
// callers test with errors.Is.
var (
	// ErrNotFound: no group with that id (or no container with that name).
	ErrNotFound = errors.New("runtime: not found")
	// ErrImagePull: an image could not be resolved or pulled (unknown image,
	// denied, registry unreachable). Returned wrapped in an *ImageError that
	// names the image.
	ErrImagePull = errors.New("runtime: image pull failed")
	// ErrInitContainer: an init container exited non-zero (or could not
	// start); the group does not start. Wrapped with the container's name.
	ErrInitContainer = errors.New("runtime: init container failed")
	// ErrVolume: a volume could not be prepared (git clone failed, …).
	ErrVolume = errors.New("runtime: volume failed")
	// ErrUnsupported: the implementation cannot do this (e.g. GPUs requested
	// and the runtime configured to refuse them).
	ErrUnsupported = errors.New("runtime: unsupported")
)

// ImageError is a failed pull of Image; it wraps ErrImagePull.
type ImageError struct {
	Image string
	Err   error
}

func (e *ImageError) Error() string { return "image " + e.Image + ": " + e.Err.Error() }

// Unwrap returns ErrImagePull and the cause.
func (e *ImageError) Unwrap() []error { return []error{ErrImagePull, e.Err} }

// RestartPolicy is ACI's restart policy.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// GroupSpec is what a group should run. It is the runtime's own type: the
// service layer translates its domain model into it. It never names a host
// path: volumes and networks are described by kind and the runtime decides
// where they live.
type GroupSpec struct {
	// ID identifies the group in the runtime; unique and stable for the life
	// of the group (not reused after delete). Safe for file names and
	// containerd ids: [a-z0-9-], at most 64 characters.
	ID string
	// Labels are free-form and stored with the group (for humans and tools).
	Labels        map[string]string
	RestartPolicy RestartPolicy
	// InitContainers run one after another, each to completion (exit 0),
	// before Containers start. One that fails fails the group (see
	// ErrInitContainer). Their names are distinct from the containers'.
	InitContainers []ContainerSpec
	Containers     []ContainerSpec
	// Volumes can be mounted by the containers and init containers (by name).
	Volumes []VolumeSpec
	// DNS, when set, becomes the group's resolv.conf; nil: the runtime's
	// default (berth's DNS server when it runs one, else the host's).
	DNS *DNSSpec
	// Network names the network the group joins: "" is the default (public)
	// network; otherwise a network added with the runtime's network
	// management (a virtual-network subnet).
	Network string
	// Credentials are tried for image pulls whose registry host equals Server.
	Credentials []RegistryCredential
	// ResolveCredential, when set, is asked at every pull (including re-pulls
	// after a restart) for the credential of a registry host, before
	// Credentials; ok false means it has none for host.
	ResolveCredential func(ctx context.Context, host string) (cred RegistryCredential, ok bool, err error)
}

// ContainerSpec is one container (or init container) of a group.
type ContainerSpec struct {
	Name string
	// Image is a reference such as "127.0.0.1:7444/app:v1" or
	// "127.0.0.1:7444/app@sha256:...". A registry host is required.
	Image string
	// Command, when set, replaces the image's entrypoint and cmd.
	Command []string
	Env     []EnvVar
	// CPU is the cap in cores (fractional allowed); 0 = no cap.
	CPU float64
	// MemoryBytes is the cap; 0 = no cap.
	MemoryBytes int64
	// GPUs is the number of GPUs requested (0: none). Without GPUs on the
	// host the runtime runs the container without a device and emits a
	// Warning event saying so.
	GPUs int
	// Ports the container listens on (informational: every port of the
	// group's address is reachable from the host).
	Ports []Port
	// Mounts are volumes of the group mounted into the container.
	Mounts []Mount
	// Security adjusts the process's privileges; nil: the defaults.
	Security *SecurityContext
	// Liveness restarts the container when it fails; Readiness decides
	// ContainerStatus.Ready. nil: none (always live, ready once running).
	Liveness  *Probe
	Readiness *Probe
}

// EnvVar is an environment variable given to the container.
type EnvVar struct{ Name, Value string }

// Port is a listening port.
type Port struct {
	Port     int
	Protocol string // "TCP" or "UDP"
}

// RegistryCredential authenticates pulls from one registry host.
type RegistryCredential struct {
	Server   string // host[:port], as in image references
	Username string
	Password string
}

// VolumeKind says what a volume is.
type VolumeKind string

const (
	// VolumeEmptyDir is an empty directory shared by the group's
	// containers, gone with the group.
	VolumeEmptyDir VolumeKind = "EmptyDir"
	// VolumeSecret holds Files on memory-backed storage, readable by the
	// owner only, gone with the group.
	VolumeSecret VolumeKind = "Secret"
	// VolumeGitRepo is a clone of GitRepo made before the containers start.
	VolumeGitRepo VolumeKind = "GitRepo"
	// VolumeShare is a persistent share kept by the runtime, keyed by
	// Share.Account and Share.Name: every group mounting the same key sees
	// the same files, and they outlive the group.
	VolumeShare VolumeKind = "Share"
)

// VolumeSpec is one volume of a group.
type VolumeSpec struct {
	Name string
	Kind VolumeKind
	// Files are a secret volume's contents (decoded), by file name.
	Files   map[string][]byte
	GitRepo *GitRepoSpec
	Share   *ShareSpec
}

// GitRepoSpec is a repository to clone.
type GitRepoSpec struct {
	Repository string // a URL git can clone (file://, or one berth reaches)
	Directory  string // "" or "." clones into the volume's root
	Revision   string // commit, branch or tag; "": the default branch
}

// ShareSpec names a persistent share.
type ShareSpec struct {
	Account  string
	Name     string
	ReadOnly bool // every mount of this volume is read-only
}

// Mount puts a volume of the group at Path inside a container.
type Mount struct {
	Volume   string
	Path     string
	ReadOnly bool
}

// SecurityContext is ACI's container securityContext. nil pointers keep the
// runtime's defaults.
type SecurityContext struct {
	Privileged               *bool
	AllowPrivilegeEscalation *bool
	RunAsUser                *int64
	RunAsGroup               *int64
	CapabilitiesAdd          []string // e.g. "NET_ADMIN" (with or without CAP_)
	CapabilitiesDrop         []string // "ALL" drops every capability
	// SeccompProfile is a base64-encoded seccomp profile (JSON, as ACI
	// takes it); "": the runtime's default profile.
	SeccompProfile string
}

// DNSSpec is a group's resolver configuration.
type DNSSpec struct {
	Nameservers []string
	Search      []string
	Options     []string
}

// Probe checks a container. Exactly one of Exec and HTTPGet is set.
type Probe struct {
	Exec    []string
	HTTPGet *HTTPGetProbe
	// Timings in seconds; zero values take ACI's defaults (initial delay 0,
	// period 10, failure threshold 3, success threshold 1, timeout 1).
	InitialDelaySeconds int
	PeriodSeconds       int
	FailureThreshold    int
	SuccessThreshold    int
	TimeoutSeconds      int
}

// HTTPGetProbe is an HTTP GET against the group's address.
type HTTPGetProbe struct {
	Path    string
	Port    int
	Scheme  string // "http" (default) or "https"
	Headers map[string]string
}

// State is a container's state in ACI's vocabulary.
type State string

const (
	StateWaiting    State = "Waiting"
	StateRunning    State = "Running"
	StateTerminated State = "Terminated"
)

// ContainerState is one state a container was in.
type ContainerState struct {
	State      State
	StartTime  time.Time // zero if never started
	FinishTime time.Time // zero unless Terminated
	ExitCode   int       // meaningful when Terminated
	// DetailStatus is ACI's detail: "" while running, "Completed" for exit
	// code 0, "Error" otherwise, "OOMKilled" when killed over its memory
	// limit, "CrashLoopBackOff" while waiting to restart.
	DetailStatus string
}

// ContainerStatus is the live state of one container.
type ContainerStatus struct {
	Name         string
	Current      ContainerState
	Previous     *ContainerState // nil before the first restart
	RestartCount int
	// Ready is the readiness probe's verdict (true while running when the
	// container has no readiness probe).
	Ready bool
}

// GroupStatus is the live state of a group as the runtime sees it now.
type GroupStatus struct {
	ID string
	// IP is the group's address (in berth's bridge subnet); "" if none.
	IP             string
	InitContainers []ContainerStatus
	Containers     []ContainerStatus
}

// EventKind names what happened. The names are ACI's event names.
type EventKind string

const (
	EventPulling EventKind = "Pulling" // started pulling an image
	EventPulled  EventKind = "Pulled"  // image pulled (or already present)
	EventFailed  EventKind = "Failed"  // pull failed (Warning)
	EventStarted EventKind = "Started" // container process started
	EventExited  EventKind = "Exited"  // process exited; see ExitCode
	EventKilling EventKind = "Killing" // being stopped by berth
	EventBackOff EventKind = "BackOff" // waiting before a restart (Warning)
	// EventUnhealthy: a liveness or readiness probe failed (Warning).
	EventUnhealthy EventKind = "Unhealthy"
	// EventWarning: something the user should know that is not a failure,
	// e.g. a GPU requested on a host without one (Warning).
	EventWarning EventKind = "Warning"
	// EventFailedMount: a volume could not be prepared (Warning).
	EventFailedMount EventKind = "FailedMount"
)

// Event is something that happened to a container of a group.
type Event struct {
	GroupID   string
	Container string
	Kind      EventKind
	Message   string // human readable, ACI style: `pulling image "x"`
	Warning   bool   // ACI event type Warning instead of Normal
	ExitCode  int    // for EventExited
	Time      time.Time
}

// LogOptions select what Logs returns.
type LogOptions struct {
	// Tail > 0 keeps only the last Tail lines.
	Tail int
	// Timestamps prefixes each line with the time it was written
	// (RFC 3339 with nanoseconds, UTC, then a space), as ACI's listLogs
	// timestamps=true does.
	Timestamps bool
	// Follow keeps the stream open, delivering new output as it is written,
	// until ctx ends, the reader is closed, or the container's group is
	// deleted.
	Follow bool
}

// ExecOptions describe a process to run in a running container.
type ExecOptions struct {
	Command []string
	// TTY allocates a terminal of Cols x Rows (stdout and stderr merged).
	TTY        bool
	Cols, Rows uint16
}

// ExecSession is a process started by Exec. Its output (stdout and stderr
// merged) is read from Output until EOF, which comes when the process ends.
type ExecSession interface {
	// Stdin feeds the process; Close it to send EOF (not on a terminal,
	// which has no end of input: there ^D is written, as a user types it).
	Stdin() io.WriteCloser
	Output() io.Reader
	// Resize changes the terminal size (TTY sessions).
	Resize(cols, rows uint16) error
	// Wait waits for the process to end and returns its exit code.
	Wait(ctx context.Context) (int, error)
	// Close kills the process if it still runs and releases it.
	Close() error
}

// Runtime runs container groups.
type Runtime interface {
	// CreateGroup creates the sandbox, pulls every image (in order), runs
	// the init containers to completion one after another, then creates and
	// starts every container. It returns the group's status once all
	// containers have been started, or an error (an *ImageError for pull
	// failures, ErrInitContainer, ErrVolume); on error nothing of the group
	// is left running and no address is held, but events already emitted
	// stay emitted. Creating an id that exists fails. Cost: a pull per image
	// that is not cached, tens of milliseconds per container otherwise.
	CreateGroup(ctx context.Context, spec GroupSpec) (GroupStatus, error)

	// RecoverGroup re-adopts a group after berth restarted: containers still
	// running are kept and watched again; exited ones are handled by the
	// restart policy (a container that should run is started again); a group
	// whose sandbox vanished (host reboot) is recreated with a new address.
	// Returns the status after recovery.
	RecoverGroup(ctx context.Context, spec GroupSpec) (GroupStatus, error)

	// RestartGroup restarts every container of a running group in place:
	// same sandbox and address, init containers run again first, restart
	// counts kept. ErrNotFound if the group does not exist.
	RestartGroup(ctx context.Context, spec GroupSpec) (GroupStatus, error)

	// Status reports the live state, read from the runtime (not cached).
	// ErrNotFound if the group does not exist.
	Status(ctx context.Context, id string) (GroupStatus, error)

	// Logs streams the container's combined stdout/stderr (init containers
	// included). ErrNotFound for unknown group or container. The caller
	// closes the reader.
	Logs(ctx context.Context, id, container string, opts LogOptions) (io.ReadCloser, error)

	// Exec starts a process in a running container. ErrNotFound for an
	// unknown group or container, or one that is not running.
	Exec(ctx context.Context, id, container string, opts ExecOptions) (ExecSession, error)

	// ListGroups returns the ids of every group the runtime holds, in no
	// particular order (berth sweeps groups no stored container group
	// refers to, e.g. after a crash mid-update).
	ListGroups(ctx context.Context) ([]string, error)

	// DeleteGroup kills the containers, removes them, their logs, the sandbox
	// and its address. Deleting an unknown id succeeds.
	DeleteGroup(ctx context.Context, id string) error

	// Subscribe returns a stream of events for all groups. Events are
	// delivered in order per group; a slow subscriber does not block the
	// runtime (events beyond a generous buffer are dropped and counted).
	// cancel ends the subscription and closes the channel.
	Subscribe() (events <-chan Event, cancel func())

	// Close stops watching; containers keep running (they are re-adopted by
	// RecoverGroup on the next start).
	Close() error
}

// ReadLogs reads a container's whole log (not following) into memory: a
// convenience for callers that want bytes, such as listLogs.
func ReadLogs(ctx context.Context, rt Runtime, id, container string, opts LogOptions) ([]byte, error) {
	opts.Follow = false
	rc, err := rt.Logs(ctx, id, container, opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
