package terminal

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime/fake"
	"github.com/berth-dev/berth/internal/store/memory"
)

// env is a container-group service on the fake runtime with one running
// group ("web", container "c"), and the handler behind a TLS server.
type env struct {
	svc *aci.Service
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, rt, clk := memory.New(), fake.New(fake.Options{}), clock.Real{}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	svc := &aci.Service{Store: st, Runtime: rt, Resources: res, Operations: ops, Clock: clk}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close(); svc.Close(); rt.Close() })
	if err := res.EnsureSubscription(ctx, resources.Subscription{ID: "sub", TenantID: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: "sub", Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	g := &aci.Group{Subscription: "sub", ResourceGroup: "rg", Name: "web", Location: "westus", OSType: "Linux", RestartPolicy: "Always",
		Containers: []aci.Container{{Name: "c", Image: "reg/app:v1", Requests: aci.Resources{CPU: 1, MemoryGB: 1}}}}
	if _, _, _, err := svc.CreateOrUpdate(ctx, g); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if v, err := svc.View(ctx, "sub", "rg", "web"); err == nil && v.State == "Running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("group not running")
		}
	}
	mux := http.NewServeMux()
	mux.Handle(PathPrefix, &Handler{Sessions: svc})
	e := &env{svc: svc, srv: httptest.NewTLSServer(mux)}
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) dial(t *testing.T, uri string, header http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, uri, &websocket.DialOptions{HTTPClient: e.srv.Client(), HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", uri, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// collect reads messages until the server closes; it returns the output,
// the message types seen and the close status and reason.
func collect(t *testing.T, c *websocket.Conn) (string, []websocket.MessageType, websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	var types []websocket.MessageType
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return out.String(), types, ce.Code, ce.Reason
			}
			t.Fatalf("read: %v (output so far %q)", err, out.String())
		}
		types = append(types, typ)
		out.Write(msg)
	}
}

func TestExecOverWebsocket(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", `sh -c "echo hello; exit 3"`, 30, 100)
	if err != nil {
		t.Fatal(err)
	}
	uri := URL(e.srv.URL, tk.ID, tk.Rows, tk.Cols)
	if !strings.HasPrefix(uri, "wss://"+strings.TrimPrefix(e.srv.URL, "https://")+PathPrefix) || !strings.HasSuffix(uri, "?rows=30&cols=100") {
		t.Fatalf("uri %s", uri)
	}
	c := e.dial(t, uri, nil)
	if err := c.Write(ctx, websocket.MessageText, []byte(tk.Password)); err != nil {
		t.Fatal(err)
	}
	out, types, status, reason := collect(t, c)
	if out != "hello\r\n" || status != websocket.StatusNormalClosure || reason != `{"exitCode":3}` {
		t.Errorf("output %q, close %d %q", out, status, reason)
	}
	if len(types) == 0 || types[0] != websocket.MessageText {
		t.Errorf("message types %v, want text", types)
	}

	// The password again: refused.
	c = e.dial(t, uri, nil)
	c.Write(ctx, websocket.MessageText, []byte(tk.Password))
	if _, _, status, _ := collect(t, c); status != websocket.StatusPolicyViolation {
		t.Errorf("reused password: close %d, want 1008", status)
	}
}

func TestExecInputAndBinaryOutput(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, _ := e.svc.Exec(ctx, "sub", "rg", "web", "c", "cat", 0, 0)
	c := e.dial(t, URL(e.srv.URL, tk.ID, tk.Rows, tk.Cols), nil)
	c.Write(ctx, websocket.MessageText, []byte(tk.Password))
	c.Write(ctx, websocket.MessageBinary, []byte("héllo"))
	c.Write(ctx, websocket.MessageBinary, []byte{0xff, '\n'})
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var got []byte
	var types []websocket.MessageType
	for len(got) < len("héllo\xff\r\n") {
		typ, msg, err := c.Read(rctx)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		got, types = append(got, msg...), append(types, typ)
	}
	if string(got) != "héllo\xff\r\n" {
		t.Errorf("echoed %q", got)
	}
	if types[len(types)-1] != websocket.MessageBinary {
		t.Errorf("invalid UTF-8 sent as %v", types)
	}
	// The client leaving ends the process (cat would run forever).
	c.Close(websocket.StatusNormalClosure, "")
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, _ := e.svc.Exec(ctx, "sub", "rg", "web", "c", "true", 0, 0)
	c := e.dial(t, URL(e.srv.URL, tk.ID, 0, 0), nil)
	c.Write(ctx, websocket.MessageText, []byte("wrong"))
	if _, _, status, _ := collect(t, c); status != websocket.StatusPolicyViolation {
		t.Errorf("wrong password: close %d, want 1008", status)
	}
	// The ticket is burnt.
	c = e.dial(t, URL(e.srv.URL, tk.ID, 0, 0), nil)
	c.Write(ctx, websocket.MessageText, []byte(tk.Password))
	if _, _, status, _ := collect(t, c); status != websocket.StatusPolicyViolation {
		t.Errorf("after a wrong password: close %d, want 1008", status)
	}
	// Unknown session.
	c = e.dial(t, URL(e.srv.URL, "nosuchsession", 0, 0), nil)
	c.Write(ctx, websocket.MessageText, []byte("x"))
	if _, _, status, _ := collect(t, c); status != websocket.StatusPolicyViolation {
		t.Errorf("unknown session: close %d, want 1008", status)
	}
}

func TestExecThatCannotStart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, _ := e.svc.Exec(ctx, "sub", "rg", "web", "c", "no-such-program", 0, 0)
	c := e.dial(t, URL(e.srv.URL, tk.ID, 0, 0), nil)
	c.Write(ctx, websocket.MessageText, []byte(tk.Password))
	out, _, status, _ := collect(t, c)
	if status != websocket.StatusInternalError || !strings.Contains(out, "executable file not found") {
		t.Errorf("output %q, close %d", out, status)
	}
}

func TestAttachWithHeader(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, err := e.svc.Attach(ctx, "sub", "rg", "web", "c")
	if err != nil {
		t.Fatal(err)
	}
	// A wrong header is refused before the upgrade.
	_, resp, err := websocket.Dial(ctx, URL(e.srv.URL, tk.ID, 0, 0), &websocket.DialOptions{
		HTTPClient: e.srv.Client(), HTTPHeader: http.Header{"Authorization": {"wrong"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong header: %v, %v", resp, err)
	}
	tk, _ = e.svc.Attach(ctx, "sub", "rg", "web", "c")
	c := e.dial(t, URL(e.srv.URL, tk.ID, 0, 0), http.Header{"Authorization": {tk.Password}})
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, msg, err := c.Read(rctx)
	if err != nil || string(msg) != "listening on :8080\n" {
		t.Fatalf("attach: %q, %v", msg, err)
	}
	// Deleting the group ends the stream with a normal close.
	if _, err := e.svc.Delete(ctx, "sub", "rg", "web"); err != nil {
		t.Fatal(err)
	}
	if _, _, status, reason := collect(t, c); status != websocket.StatusNormalClosure || reason != "" {
		t.Errorf("after delete: close %d %q", status, reason)
	}
}

func TestIncompleteTail(t *testing.T) {
	for in, want := range map[string]int{
		"abc": 0, "é": 0, "a\xc3": 1, "a\xe2\x82": 2, "a\xe2": 1, "\xf0\x9f\x98": 3, "€": 0, "\xff": 0,
	} {
		if got := incompleteTail([]byte(in)); got != want {
			t.Errorf("incompleteTail(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestTerminalSizeFromExecRequest: az sends no resize messages (its
// websocket carries the password, then keystrokes); the terminalSize of the
// exec request is the size of the process's terminal.
func TestTerminalSizeFromExecRequest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tk, err := e.svc.Exec(ctx, "sub", "rg", "web", "c", "stty size", 37, 132)
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, URL(e.srv.URL, tk.ID, tk.Rows, tk.Cols), nil)
	if err := c.Write(ctx, websocket.MessageText, []byte(tk.Password)); err != nil {
		t.Fatal(err)
	}
	out, _, status, reason := collect(t, c)
	if out != "37 132\r\n" || status != websocket.StatusNormalClosure || reason != `{"exitCode":0}` {
		t.Errorf("stty size in a 37x132 terminal: output %q, close %d %q", out, status, reason)
	}
}
