package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// ioDrainTimeout bounds how long an exec waits, after its process exited,
// for output still held by the process's children.
const ioDrainTimeout = 5 * time.Second

// Exec starts a process in a running container (see runtime.Runtime): the
// container's own process settings (user, environment, working directory,
// capabilities) with opts.Command, its stdio through FIFOs that the shim
// copies.
func (r *Runtime) Exec(ctx context.Context, id, container string, opts runtime.ExecOptions) (runtime.ExecSession, error) {
	if len(opts.Command) == 0 {
		return nil, errors.New("exec: empty command")
	}
	rec, err := r.readRecord(id)
	if err != nil {
		return nil, err
	}
	if !isContainer(rec, container) {
		return nil, fmt.Errorf("container %q in group %q: %w", container, id, runtime.ErrNotFound)
	}
	ctx = r.nsctx(ctx)
	task, proc, err := r.runningTask(ctx, id, container)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(r.ctx)
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	s := &execSession{r: r, cancel: cancel, stdin: stdinW, out: outR, done: make(chan struct{})}
	p, exited, err := r.startProcess(ctx, sctx, task, proc, processOpts{
		args: opts.Command, tty: opts.TTY, cols: opts.Cols, rows: opts.Rows, stdin: stdinR, out: outW,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	s.proc = p
	go func() {
		defer close(s.done)
		s.code, s.err = r.finishProcess(p, exited)
		outW.Close()
		stdinR.CloseWithError(io.ErrClosedPipe)
		cancel()
	}()
	return s, nil
}

// runningTask returns container name's task and process template, or an
// error wrapping runtime.ErrNotFound if the container does not exist or its
// task is not running.
func (r *Runtime) runningTask(ctx context.Context, groupID, name string) (client.Task, *specs.Process, error) {
	cid := containerID(groupID, name)
	notRunning := fmt.Errorf("container %q of group %q is not running: %w", name, groupID, runtime.ErrNotFound)
	cont, err := r.client.LoadContainer(ctx, cid)
	if errdefs.IsNotFound(err) {
		return nil, nil, notRunning
	}
	if err != nil {
		return nil, nil, err
	}
	info, err := cont.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return nil, nil, err
	}
	var spec specs.Spec
	if info.Spec == nil || json.Unmarshal(info.Spec.GetValue(), &spec) != nil || spec.Process == nil {
		return nil, nil, fmt.Errorf("container %q of group %q: no process spec", name, groupID)
	}
	resp, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: cid})
	if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
		return nil, nil, notRunning
	}
	if err != nil {
		return nil, nil, err
	}
	if resp.GetProcess().GetStatus() != tasktypes.Status_RUNNING {
		return nil, nil, notRunning
	}
	task, err := cont.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil, notRunning
	}
	if err != nil {
		return nil, nil, err
	}
	return task, spec.Process, nil
}

// processOpts describe an exec process.
type processOpts struct {
	args       []string
	tty        bool
	cols, rows uint16
	stdin      io.Reader // nil: none
	out        io.Writer // stdout and stderr
}

// startProcess starts an exec process in task, with the container's process
// settings base. wctx bounds the wait for its exit (the returned channel).
func (r *Runtime) startProcess(ctx, wctx context.Context, task client.Task, base *specs.Process, o processOpts) (client.Process, <-chan client.ExitStatus, error) {
	pspec := *base
	pspec.Args = o.args
	pspec.Terminal = o.tty
	pspec.ConsoleSize = nil
	if o.tty && o.cols > 0 && o.rows > 0 {
		pspec.ConsoleSize = &specs.Box{Width: uint(o.cols), Height: uint(o.rows)}
	}
	// The shim keeps the stdin FIFO open itself; at the end of stdin it is
	// told to close it (CloseIO), so that the process reads EOF. Not so on a
	// terminal: there the shim answers CloseIO by closing the terminal, which
	// hangs up the process (SIGHUP) whether or not it has finished, and a
	// terminal has no end of input anyway (^D is a byte); the process ends
	// by itself or is killed when its session closes.
	var stdin io.Reader = o.stdin
	var eof *stdinEOF
	if o.stdin != nil && !o.tty {
		eof = &stdinEOF{r: o.stdin, started: make(chan client.Process, 1)}
		stdin = eof
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, o.out, o.out), cio.WithFIFODir(filepath.Join(r.cfg.DataDir, "fifo"))}
	if o.tty {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	p, err := task.Exec(ctx, newExecID(), &pspec, cio.NewCreator(ioOpts...))
	if err != nil {
		if eof != nil {
			close(eof.started)
		}
		return nil, nil, fmt.Errorf("exec: %w", err)
	}
	exited, err := p.Wait(r.nsctx(wctx))
	if err == nil {
		err = p.Start(ctx)
	}
	if err != nil {
		if eof != nil {
			close(eof.started)
		}
		dctx, cancel := context.WithTimeout(r.nsctx(context.Background()), 10*time.Second)
		defer cancel()
		if _, derr := p.Delete(dctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			r.log.Warn("deleting an exec that did not start", "err", derr)
		}
		return nil, nil, fmt.Errorf("exec %q: %w", o.args[0], errgrpc.ToNative(err))
	}
	if o.tty && o.cols > 0 && o.rows > 0 {
		_ = p.Resize(ctx, uint32(o.cols), uint32(o.rows))
	}
	if eof != nil {
		eof.ctx = r.nsctx(wctx)
		eof.started <- p
	}
	return p, exited, nil
}

// finishProcess waits for p to exit and for its output to be copied (at
// most ioDrainTimeout longer), then deletes it. If the wait ends without an
// exit (berth stopping), the process is killed.
func (r *Runtime) finishProcess(p client.Process, exited <-chan client.ExitStatus) (int, error) {
	st := <-exited
	code, _, err := st.Result()
	ctx, cancel := context.WithTimeout(r.nsctx(context.Background()), 30*time.Second)
	defer cancel()
	if err != nil {
		_ = p.Kill(ctx, syscall.SIGKILL)
	}
	drained := make(chan struct{})
	go func() { p.IO().Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(ioDrainTimeout):
		p.IO().Cancel()
	}
	if _, derr := p.Delete(ctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
		r.log.Warn("deleting an exec process", "err", derr)
	}
	if err != nil {
		return -1, fmt.Errorf("exec: wait: %w", err)
	}
	return int(code), nil
}

// stdinEOF passes stdin through; at its end it asks the shim to close the
// process's stdin, once the process has started.
type stdinEOF struct {
	r       io.Reader
	started chan client.Process
	ctx     context.Context
	once    sync.Once
}

func (e *stdinEOF) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.once.Do(func() {
			go func() {
				proc, ok := <-e.started
				if !ok {
					return // it did not start
				}
				ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
				defer cancel()
				_ = proc.CloseIO(ctx, client.WithStdinCloser)
			}()
		})
	}
	return n, err
}

func newExecID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "exec-" + hex.EncodeToString(b)
}

// execSession is a runtime.ExecSession over a containerd exec process.
type execSession struct {
	r      *Runtime
	proc   client.Process
	cancel context.CancelFunc
	stdin  *io.PipeWriter
	out    *io.PipeReader
	done   chan struct{}
	code   int
	err    error
	once   sync.Once
}

func (s *execSession) Stdin() io.WriteCloser { return s.stdin }
func (s *execSession) Output() io.Reader     { return s.out }

func (s *execSession) Resize(cols, rows uint16) error {
	select {
	case <-s.done:
		return errors.New("exec: process has exited")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.proc.Resize(s.r.nsctx(ctx), uint32(cols), uint32(rows))
}

func (s *execSession) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
		return s.code, s.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Close kills the process if it still runs, and waits until it is deleted.
func (s *execSession) Close() error {
	s.once.Do(func() {
		select {
		case <-s.done:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.proc.Kill(s.r.nsctx(ctx), syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				s.cancel() // ends the wait; finishProcess kills and deletes
			}
			cancel()
		}
		s.out.Close()
		<-s.done
	})
	return nil
}
