package containerd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// daemon is a private containerd under dir, started or adopted by New.
type daemon struct {
	dir     string
	address string
	pid     int
	exited  chan struct{} // closed when a daemon we started exits; nil if adopted
}

// daemonConfig is containerd's configuration (version 2) for a private daemon
// under dir.
func daemonConfig(dir string) []byte {
	q := func(s string) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(s) // a JSON string is a valid TOML basic string
		return strings.TrimSpace(b.String())
	}
	return []byte(fmt.Sprintf(`# Written by berth: a private containerd for berth's containers.
version = 2
root = %s
state = %s
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins."io.containerd.internal.v1.opt"]
  path = %s
`, q(filepath.Join(dir, "root")), q(filepath.Join(dir, "state")),
		q(filepath.Join(dir, "containerd.sock")), q(filepath.Join(dir, "containerd.sock.ttrpc")),
		q(filepath.Join(dir, "opt"))))
}

// startDaemon adopts the containerd answering on dir's socket, or starts one.
func startDaemon(ctx context.Context, binary, dir string) (*daemon, error) {
	d := &daemon{dir: dir, address: filepath.Join(dir, "containerd.sock")}
	if len(d.address) > maxSocketPath {
		return nil, fmt.Errorf("containerd socket path %s is longer than %d bytes: use a shorter data directory", d.address, maxSocketPath)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, err
	}
	if answers(ctx, d.address) {
		d.pid = d.readPid()
		return d, nil
	}
	// Nothing answers: a socket file left by a daemon that died is stale.
	os.Remove(d.address)
	os.Remove(d.address + ".ttrpc")

	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, daemonConfig(dir), 0o644); err != nil {
		return nil, err
	}
	if binary == "" {
		binary = "containerd"
	}
	path, err := exec.LookPath(binary)
	if err != nil {
		return nil, fmt.Errorf("containerd binary: %w", err)
	}
	logPath := filepath.Join(dir, "containerd.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(path, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	// Its own process group: a ^C to berth must not reach containerd (the
	// containers outlive berth; Close stops the daemon deliberately).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	d.pid = cmd.Process.Pid
	d.exited = make(chan struct{})
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	if err := os.WriteFile(filepath.Join(dir, "containerd.pid"), []byte(strconv.Itoa(d.pid)+"\n"), 0o644); err != nil {
		d.stop(10 * time.Second)
		return nil, err
	}

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("containerd exited at start; see %s:\n%s", logPath, tailFile(logPath, 10))
		case <-deadline.C:
			d.stop(10 * time.Second)
			return nil, fmt.Errorf("containerd did not answer on %s within 30 s; see %s", d.address, logPath)
		case <-ctx.Done():
			d.stop(10 * time.Second)
			return nil, ctx.Err()
		case <-tick.C:
			if answers(ctx, d.address) {
				return d, nil
			}
		}
	}
}

// answers reports whether a containerd answers Version on address.
func answers(ctx context.Context, address string) bool {
	if _, err := os.Stat(address); err != nil {
		return false
	}
	c, err := client.New(address, client.WithTimeout(time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Version(ctx)
	return err == nil
}

// readPid returns the pid recorded for an adopted daemon if that process is
// still a containerd using dir's configuration, else 0.
func (d *daemon) readPid() int {
	b, err := os.ReadFile(filepath.Join(d.dir, "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(filepath.Join(d.dir, "config.toml"))) {
		return 0
	}
	return pid
}

// stop sends SIGTERM and waits up to grace for the daemon to exit, then
// sends SIGKILL. The shims, and with them the containers, keep running.
func (d *daemon) stop(grace time.Duration) error {
	if d.pid == 0 {
		return errors.New("private containerd: pid unknown, not stopped")
	}
	if d.exited != nil {
		select {
		case <-d.exited:
			return nil // reaped already: its pid may be another process's now
		default:
		}
	}
	if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop containerd (pid %d): %w", d.pid, err)
	}
	if d.waitExit(grace) {
		return nil
	}
	syscall.Kill(d.pid, syscall.SIGKILL)
	if !d.waitExit(5 * time.Second) {
		return fmt.Errorf("containerd (pid %d) did not exit", d.pid)
	}
	return nil
}

func (d *daemon) waitExit(timeout time.Duration) bool {
	if d.exited != nil {
		select {
		case <-d.exited:
			return true
		case <-time.After(timeout):
			return false
		}
	}
	// Adopted: not our child; poll until it is gone (or a zombie).
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// tailFile returns the last n lines of the file at path ("" if unreadable).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(tailLines(b, n))
}
