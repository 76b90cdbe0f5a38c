package fake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// Exec simulates a process in a running container. It understands the
// commands the tests use: true, false, echo ARGS, cat (stdin to output),
// sleep S, exit N, stty size (TTY sessions), the test image's /app modes
// echo, exit and sleep, and sh -c "…" with ;-separated commands among those,
// whose output may be redirected with >&2 (the session's output) or to
// /proc/1/fd/1 or /proc/1/fd/2 (the container's log). Anything else fails
// to start, as an unknown executable does.
func (r *Runtime) Exec(ctx context.Context, id, name string, opts runtime.ExecOptions) (runtime.ExecSession, error) {
	if len(opts.Command) == 0 {
		return nil, errors.New("fake exec: empty command")
	}
	r.mu.Lock()
	c, err := r.lookup(id, name)
	if err == nil && c.status.Current.State != runtime.StateRunning {
		err = fmt.Errorf("container %q of group %q is not running: %w", name, id, runtime.ErrNotFound)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := known(opts.Command); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{cancel: cancel, stdin: inW, out: outR, done: make(chan struct{}), cols: opts.Cols, rows: opts.Rows}
	var out io.Writer = outW
	var in io.Reader = inR
	if opts.TTY {
		out = crlf{outW}
		in = &ttyInput{r: inR, ctx: ctx}
	}
	p := &proc{ctx: ctx, stdin: in, out: out, log: &c.logs, tty: opts.TTY, cols: &s.cols, rows: &s.rows, mu: &s.mu}
	go func() {
		defer close(s.done)
		s.code = p.run(opts.Command)
		outW.Close()
		inR.CloseWithError(io.ErrClosedPipe)
	}()
	return s, nil
}

// known checks that the simulation can run cmd.
func known(cmd []string) error {
	switch name, _ := command(cmd); name {
	case "true", "false", "echo", "cat", "sleep", "exit", "stty", "sh", "/app":
		return nil
	}
	return fmt.Errorf("fake exec: exec: %q: executable file not found in $PATH", cmd[0])
}

// command returns a command's name (the base name, /app kept) and args.
func command(cmd []string) (string, []string) {
	name, args := cmd[0], cmd[1:]
	if name == "/app" || name == "app" {
		return "/app", args
	}
	name = path.Base(name)
	if name == "busybox" && len(args) > 0 {
		name, args = args[0], args[1:]
	}
	return name, args
}

// proc is one simulated process.
type proc struct {
	ctx        context.Context
	stdin      io.Reader
	out        io.Writer
	log        io.Writer // the container's log (its /proc/1/fd/1)
	tty        bool
	mu         *sync.Mutex
	cols, rows *uint16
}

// run runs cmd and returns its exit code.
func (p *proc) run(cmd []string) int {
	name, args := command(cmd)
	if name == "/app" {
		if len(args) == 0 {
			return 2
		}
		name, args = args[0], args[1:]
	}
	switch name {
	case "true":
		return 0
	case "false":
		return 1
	case "echo":
		fmt.Fprintln(p.out, strings.Join(args, " "))
		return 0
	case "cat":
		if _, err := io.Copy(p.out, p.stdin); err != nil {
			return 1
		}
		return 0
	case "sleep":
		s, _ := strconv.ParseFloat(first(args), 64)
		select {
		case <-time.After(time.Duration(s * float64(time.Second))):
			return 0
		case <-p.ctx.Done():
			return 137
		}
	case "exit":
		n, _ := strconv.Atoi(first(args))
		return n
	case "stty":
		if !p.tty || first(args) != "size" {
			fmt.Fprintln(p.out, "stty: standard input: Not a tty")
			return 1
		}
		p.mu.Lock()
		rows, cols := *p.rows, *p.cols
		p.mu.Unlock()
		fmt.Fprintf(p.out, "%d %d\n", rows, cols)
		return 0
	case "sh":
		if first(args) != "-c" || len(args) < 2 {
			return 2
		}
		return p.script(args[1])
	}
	fmt.Fprintf(p.out, "%s: not found\n", name)
	return 127
}

// script runs ;-separated simple commands, stopping at exit.
func (p *proc) script(s string) int {
	code := 0
	for _, part := range strings.Split(s, ";") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			continue
		}
		saved := p.out
		switch {
		case len(fields) >= 2 && fields[len(fields)-1] == ">&2":
			fields = fields[:len(fields)-1]
		case len(fields) >= 3 && fields[len(fields)-2] == ">" && strings.HasPrefix(fields[len(fields)-1], "/proc/1/fd/"):
			p.out, fields = p.log, fields[:len(fields)-2]
		}
		if fields[0] == "exit" {
			n, _ := strconv.Atoi(first(fields[1:]))
			return n
		}
		if known(fields) != nil {
			fmt.Fprintf(p.out, "sh: %s: not found\n", fields[0])
			code = 127
		} else {
			code = p.run(fields)
		}
		p.out = saved
	}
	return code
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// crlf turns \n into \r\n, as a terminal does.
type crlf struct{ w io.Writer }

func (c crlf) Write(p []byte) (int, error) {
	if _, err := c.w.Write([]byte(strings.ReplaceAll(string(p), "\n", "\r\n"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// session is a runtime.ExecSession over a simulated process.
type session struct {
	cancel     context.CancelFunc
	stdin      *io.PipeWriter
	out        *io.PipeReader
	done       chan struct{}
	code       int
	mu         sync.Mutex
	cols, rows uint16
}

func (s *session) Stdin() io.WriteCloser { return s.stdin }
func (s *session) Output() io.Reader     { return s.out }

func (s *session) Resize(cols, rows uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cols, s.rows = cols, rows
	return nil
}

func (s *session) Wait(ctx context.Context) (int, error) {
	select {
	case <-s.done:
		return s.code, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (s *session) Close() error {
	s.cancel()
	s.stdin.CloseWithError(io.ErrClosedPipe)
	s.out.Close()
	<-s.done
	return nil
}

// ttyInput is a terminal's input as a process reads it: ^D ends it, and the
// writer closing does not (a terminal has no end of input; the process
// waits until its session ends).
type ttyInput struct {
	r   io.Reader
	ctx context.Context
	eot bool
}

func (t *ttyInput) Read(p []byte) (int, error) {
	if t.eot {
		return 0, io.EOF
	}
	n, err := t.r.Read(p)
	if i := bytes.IndexByte(p[:n], 4); i >= 0 {
		t.eot = true
		if i == 0 {
			return 0, io.EOF
		}
		return i, nil
	}
	if err == io.EOF {
		<-t.ctx.Done()
	}
	return n, err
}
