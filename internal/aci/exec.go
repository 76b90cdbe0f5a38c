package aci

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/runtime"
)

// Exec and attach (ACI's POST …/containers/{c}/exec and /attach) hand out
// a session ticket: an id (the wire layer puts it in the webSocketUri) and a
// one-shot password. The websocket end redeems it with OpenSession, which
// starts the process (exec) or the output stream (attach). Tickets live in
// memory only, expire after SessionTTL, and are burnt by the first attempt
// to open them, right password or wrong; only a hash of the password is
// kept. Tickets not yet redeemed are capped, per container group and in
// all, so that asking for tickets without opening them cannot grow the
// table without bound; expired ones do not count.

// SessionTTL is how long a session's password stays valid.
const SessionTTL = 60 * time.Second

// Caps on tickets not yet redeemed (nor expired): per container group, and
// across all groups.
const (
	MaxPendingSessionsPerGroup = 32
	MaxPendingSessions         = 1024
)

// attachTail is how many lines of the output so far an attach shows before
// the live output.
const attachTail = 1000

// SessionKind says what a session streams.
type SessionKind string

const (
	// SessionExec runs a command in a terminal: its output back, input in.
	SessionExec SessionKind = "exec"
	// SessionAttach streams the container's output.
	SessionAttach SessionKind = "attach"
)

// Ticket is what exec and attach answer.
type Ticket struct {
	ID       string
	Password string // secret: returned once, never stored or logged
	Kind     SessionKind
	// Rows and Cols are the terminal size of an exec.
	Rows, Cols int
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Tail       int  // > 0: only the last Tail lines
	Timestamps bool // prefix each line with its time (RFC 3339, UTC)
}

type pendingSession struct {
	group      string // lower-case ARM id: the per-group cap's key
	kind       SessionKind
	hash       [32]byte
	expires    time.Time
	runtimeID  string
	container  string
	command    []string
	rows, cols uint16
}

// sessionTable holds the tickets not yet redeemed. The zero value is ready.
type sessionTable struct {
	mu sync.Mutex
	m  map[string]*pendingSession
}

// add stores ticket p, dropping expired ones first; it refuses when the
// caps are reached (groupName names the group in the error).
func (t *sessionTable) add(p *pendingSession, groupName string, now time.Time) (id, password string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*pendingSession{}
	}
	inGroup := 0
	for k, v := range t.m {
		switch {
		case now.After(v.expires):
			delete(t.m, k)
		case v.group == p.group:
			inGroup++
		}
	}
	// ACI's answer to too many open exec/attach requests is not documented
	// (unverified): berth answers as ARM throttles, 429 TooManyRequests,
	// saying which limit and when tickets free up.
	if inGroup >= MaxPendingSessionsPerGroup {
		return "", "", apierr.New(apierr.TooManyRequests, "TooManyRequests",
			"Container group '%s' has %d exec or attach sessions that were requested but not opened, the most it may have. Open or let them expire (after %d seconds) and retry.",
			groupName, MaxPendingSessionsPerGroup, int(SessionTTL/time.Second))
	}
	if len(t.m) >= MaxPendingSessions {
		return "", "", apierr.New(apierr.TooManyRequests, "TooManyRequests",
			"There are %d exec or attach sessions that were requested but not opened, the most berth keeps. Open or let them expire (after %d seconds) and retry.",
			MaxPendingSessions, int(SessionTTL/time.Second))
	}
	id, password = randomString(16, hex.EncodeToString), randomString(32, base64.RawURLEncoding.EncodeToString)
	p.hash = sha256.Sum256([]byte(password))
	t.m[id] = p
	return id, password, nil
}

// take removes ticket id and returns it if password is right and it has not
// expired.
func (t *sessionTable) take(id, password string, now time.Time) (*pendingSession, bool) {
	t.mu.Lock()
	p := t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	if p == nil || now.After(p.expires) {
		return nil, false
	}
	h := sha256.Sum256([]byte(password))
	return p, subtle.ConstantTimeCompare(h[:], p.hash[:]) == 1
}

func randomString(n int, enc func([]byte) string) string {
	b := make([]byte, n)
	rand.Read(b)
	return enc(b)
}

// Exec prepares an exec session running command (split into words as a
// shell would, quotes respected; no shell runs it) in a terminal of
// rows x cols (0: 24 x 80) in a running container. The process starts when
// the session is opened.
func (s *Service) Exec(ctx context.Context, sub, rg, name, container, command string, rows, cols int) (Ticket, error) {
	args, err := splitCommand(command)
	if err != nil {
		return Ticket{}, err
	}
	if len(args) == 0 {
		return Ticket{}, apierr.New(apierr.Invalid, "InvalidExecCommand", "The exec command must not be empty.").WithTarget("command")
	}
	if rows < 0 || cols < 0 || rows > 0xffff || cols > 0xffff {
		return Ticket{}, apierr.New(apierr.Invalid, "InvalidTerminalSize", "The terminal size %dx%d is invalid: rows and cols must be between 0 and 65535.", rows, cols).WithTarget("terminalSize")
	}
	if rows == 0 {
		rows = 24
	}
	if cols == 0 {
		cols = 80
	}
	g, err := s.runningContainer(ctx, sub, rg, name, container)
	if err != nil {
		return Ticket{}, err
	}
	p := &pendingSession{group: strings.ToLower(g.ID()), kind: SessionExec, expires: s.Clock.Now().Add(SessionTTL), runtimeID: g.RuntimeID,
		container: container, command: args, rows: uint16(rows), cols: uint16(cols)}
	id, pw, err := s.sessions.add(p, g.Name, s.Clock.Now())
	if err != nil {
		return Ticket{}, err
	}
	return Ticket{ID: id, Password: pw, Kind: SessionExec, Rows: rows, Cols: cols}, nil
}

// Attach prepares a session streaming a running container's output.
func (s *Service) Attach(ctx context.Context, sub, rg, name, container string) (Ticket, error) {
	g, err := s.runningContainer(ctx, sub, rg, name, container)
	if err != nil {
		return Ticket{}, err
	}
	p := &pendingSession{group: strings.ToLower(g.ID()), kind: SessionAttach, expires: s.Clock.Now().Add(SessionTTL), runtimeID: g.RuntimeID, container: container}
	id, pw, err := s.sessions.add(p, g.Name, s.Clock.Now())
	if err != nil {
		return Ticket{}, err
	}
	return Ticket{ID: id, Password: pw, Kind: SessionAttach}, nil
}

// runningContainer returns the group of a container that runs now, or ACI's
// error saying why not.
func (s *Service) runningContainer(ctx context.Context, sub, rg, name, container string) (*Group, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(g.Containers, func(c Container) bool { return c.Name == container }) {
		if slices.ContainsFunc(g.InitContainers, func(c Container) bool { return c.Name == container }) {
			return nil, initContainerNotRunning(g, container)
		}
		return nil, containerNotFound(g, container)
	}
	if g.ProvisioningState != Succeeded || g.Stopped {
		return nil, groupNotRunning(g)
	}
	st, err := s.Runtime.Status(ctx, g.RuntimeID)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil, groupNotRunning(g)
	}
	if err != nil {
		return nil, err
	}
	for _, c := range st.Containers {
		if c.Name == container && c.Current.State == runtime.StateRunning {
			return g, nil
		}
	}
	return nil, containerNotRunning(g, container)
}

func containerNotFound(g *Group, container string) error {
	return apierr.New(apierr.NotFound, "ContainerNotFound", "The container '%s' could not be found in container group '%s'.", container, g.Name)
}

// initContainerNotRunning refuses exec and attach into an init container:
// init containers run to completion before the group's containers start,
// so there is never a running one to enter once the group runs (and while
// they run the group is not running yet). ACI's own code and message for
// this are not documented (unverified); berth answers as for any container
// that is not running, naming the reason.
func initContainerNotRunning(g *Group, container string) error {
	return apierr.New(apierr.Conflict, "ContainerNotRunning",
		"The container '%s' in container group '%s' is an init container: init containers run to completion before the group's containers start. Exec and attach need a running container.", container, g.Name)
}

func groupNotRunning(g *Group) error {
	return apierr.New(apierr.Conflict, "ContainerGroupNotRunning", "The container group '%s' is not running. Exec and attach need a running container.", g.Name)
}

func containerNotRunning(g *Group, container string) error {
	return apierr.New(apierr.Conflict, "ContainerNotRunning", "The container '%s' in container group '%s' is not running. Exec and attach need a running container.", container, g.Name)
}

// errSessionAuth refuses a session: unknown id, wrong or used password, or
// expired.
var errSessionAuth = apierr.New(apierr.Unauthenticated, "InvalidSessionPassword", "The session does not exist, has expired, or the password is wrong.")

// Session is an open exec or attach session.
type Session struct {
	Kind SessionKind
	// Output is the process's output (exec: stdout and stderr through its
	// terminal) or the container's (attach), until EOF.
	Output io.Reader
	// Input feeds the process (exec); nil for attach.
	Input io.WriteCloser

	exec runtime.ExecSession // exec
	logs io.ReadCloser       // attach
}

// Wait waits, after Output's EOF, for the exit code of an exec's process;
// ok is false for attach (no process).
func (s *Session) Wait(ctx context.Context) (code int, ok bool, err error) {
	if s.exec == nil {
		return 0, false, nil
	}
	code, err = s.exec.Wait(ctx)
	return code, err == nil, err
}

// Resize changes an exec's terminal size.
func (s *Session) Resize(cols, rows uint16) error {
	if s.exec == nil {
		return nil
	}
	return s.exec.Resize(cols, rows)
}

// Close ends the session (killing an exec's process that still runs).
func (s *Session) Close() error {
	if s.exec != nil {
		return s.exec.Close()
	}
	return s.logs.Close()
}

// OpenSession redeems ticket id with its password and starts the session.
// The ticket is gone afterwards, whatever the outcome. ctx bounds only the
// opening; the session lasts until closed.
func (s *Service) OpenSession(ctx context.Context, id, password string) (*Session, error) {
	p, ok := s.sessions.take(id, password, s.Clock.Now())
	if !ok {
		return nil, errSessionAuth
	}
	notRunning := func() error {
		return apierr.New(apierr.Conflict, "ContainerNotRunning", "The container '%s' is not running.", p.container)
	}
	switch p.kind {
	case SessionAttach:
		rc, err := s.Runtime.Logs(context.WithoutCancel(ctx), p.runtimeID, p.container, runtime.LogOptions{Tail: attachTail, Follow: true})
		if errors.Is(err, runtime.ErrNotFound) {
			return nil, notRunning()
		}
		if err != nil {
			return nil, err
		}
		return &Session{Kind: SessionAttach, Output: rc, logs: rc}, nil
	default:
		es, err := s.Runtime.Exec(ctx, p.runtimeID, p.container, runtime.ExecOptions{
			Command: p.command, TTY: true, Cols: p.cols, Rows: p.rows})
		if errors.Is(err, runtime.ErrNotFound) {
			return nil, notRunning()
		}
		if err != nil {
			return nil, &apierr.Error{Class: apierr.Invalid, Code: "ExecFailed",
				Message: "The command '" + strings.Join(p.command, " ") + "' could not be started: " + startFailure(err) + ".", Err: err}
		}
		return &Session{Kind: SessionExec, Output: es.Output(), Input: es.Stdin(), exec: es}, nil
	}
}

// startFailure names, in a user-safe way, why a command did not start.
func startFailure(err error) string {
	msg := err.Error()
	for _, reason := range []string{"executable file not found in $PATH", "no such file or directory", "permission denied", "is a directory"} {
		if strings.Contains(msg, reason) {
			return reason
		}
	}
	return "the runtime refused it"
}

// splitCommand splits a command line into words: blanks separate words,
// single quotes keep everything literally, double quotes keep blanks and
// take backslash escapes of " and \, a backslash outside quotes escapes the
// next character.
func splitCommand(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune
	)
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case quote == '"':
			switch {
			case c == '"':
				quote = 0
			case c == '\\' && i+1 < len(rs) && (rs[i+1] == '"' || rs[i+1] == '\\'):
				i++
				cur.WriteRune(rs[i])
			default:
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, apierr.New(apierr.Invalid, "InvalidExecCommand", "The exec command has an unterminated quote.").WithTarget("command")
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
