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
	"time"
)

// Error classes. Implementations wrap them (fmt.Errorf("...: %w", ErrX)) so
// callers test with errors.Is.
var (
	// ErrNotFound: no group with that id (or no container with that name).
	ErrNotFound = errors.New("runtime: not found")
	// ErrImagePull: an image could not be resolved or pulled (unknown image,
	// denied, registry unreachable). The wrapped message says which image.
	ErrImagePull = errors.New("runtime: image pull failed")
)

// RestartPolicy is ACI's restart policy.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "Always"
	RestartOnFailure RestartPolicy = "OnFailure"
	RestartNever     RestartPolicy = "Never"
)

// GroupSpec is what a group should run. It is the runtime's own type: the
// service layer translates its domain model into it.
type GroupSpec struct {
	// ID identifies the group in the runtime; unique and stable for the life
	// of the group (not reused after delete). Safe for file names and
	// containerd ids: [a-z0-9-], at most 64 characters.
	ID string
	// Labels are free-form and stored with the group (for humans and tools).
	Labels        map[string]string
	RestartPolicy RestartPolicy
	Containers    []ContainerSpec
	// Credentials are tried for image pulls whose registry host equals Server.
	Credentials []RegistryCredential
}

// ContainerSpec is one container of a group.
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
	// Ports the container listens on (informational: every port of the
	// group's address is reachable from the host).
	Ports []Port
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
	// code 0, "Error" otherwise, "CrashLoopBackOff" while waiting to restart.
	DetailStatus string
}

// ContainerStatus is the live state of one container.
type ContainerStatus struct {
	Name         string
	Current      ContainerState
	Previous     *ContainerState // nil before the first restart
	RestartCount int
}

// GroupStatus is the live state of a group as the runtime sees it now.
type GroupStatus struct {
	ID string
	// IP is the group's address (in berth's bridge subnet); "" if none.
	IP         string
	Containers []ContainerStatus
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

// Runtime runs container groups.
type Runtime interface {
	// CreateGroup creates the sandbox, pulls every image (in order), then
	// creates and starts every container. It returns the group's status once
	// all containers have been started, or an error (ErrImagePull wrapped for
	// pull failures); on error nothing of the group is left running and no
	// address is held, but events already emitted stay emitted. Creating an id
	// that exists fails. Cost: a pull per image that is not cached, tens of
	// milliseconds per container otherwise.
	CreateGroup(ctx context.Context, spec GroupSpec) (GroupStatus, error)

	// RecoverGroup re-adopts a group after berth restarted: containers still
	// running are kept and watched again; exited ones are handled by the
	// restart policy (a container that should run is started again); a group
	// whose sandbox vanished (host reboot) is recreated with a new address.
	// Returns the status after recovery.
	RecoverGroup(ctx context.Context, spec GroupSpec) (GroupStatus, error)

	// Status reports the live state, read from the runtime (not cached).
	// ErrNotFound if the group does not exist.
	Status(ctx context.Context, id string) (GroupStatus, error)

	// Logs returns the container's combined stdout/stderr. tail > 0 keeps
	// only the last tail lines. ErrNotFound for unknown group or container.
	Logs(ctx context.Context, id, container string, tail int) ([]byte, error)

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
