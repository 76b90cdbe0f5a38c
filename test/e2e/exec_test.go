package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/coder/websocket"
)

// azSession is a websocket client speaking what `az container exec`
// speaks: the password as the first (text) message, then input as binary
// messages; every server message is output; the server closes at the end.
type azSession struct {
	c *websocket.Conn
}

func dialSession(t *testing.T, b *berth, uri string, header http.Header) *azSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, uri, &websocket.DialOptions{HTTPClient: b.client, HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial %s: %v", uri, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &azSession{c: c}
}

func (s *azSession) send(t *testing.T, typ websocket.MessageType, b string) {
	t.Helper()
	if err := s.c.Write(context.Background(), typ, []byte(b)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// readUntil reads output until it contains want (or the server closes).
func (s *azSession) readUntil(t *testing.T, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		_, msg, err := s.c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, out.String())
		}
		out.Write(msg)
	}
	return out.String()
}

// finish reads output until the server closes; it returns the output and
// the close status and reason.
func (s *azSession) finish(t *testing.T) (string, websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	for {
		_, msg, err := s.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("session: %v (output %q)", err, out.String())
			}
			return out.String(), ce.Code, ce.Reason
		}
		out.Write(msg)
	}
}

// TestExec: exec and attach through the Go SDK and the websocket they
// return, listLogs with timestamps, and the errors around them.
func TestExec(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "rgexec", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	image := pushTestImage(t, b, "apps/exec:v1")
	createGroup(t, s, "rgexec", "web", webGroup(b, image))

	execSized := func(cmd string, rows, cols int32) aci.ContainerExecResponse {
		t.Helper()
		resp, err := s.ctrs.ExecuteCommand(ctx, "rgexec", "web", "web", aci.ContainerExecRequest{
			Command: to.Ptr(cmd), TerminalSize: &aci.ContainerExecRequestTerminalSize{Rows: to.Ptr(rows), Cols: to.Ptr(cols)},
		}, nil)
		if err != nil {
			t.Fatalf("exec %q: %v", cmd, err)
		}
		if resp.WebSocketURI == nil || resp.Password == nil || !strings.HasPrefix(*resp.WebSocketURI, "wss://"+b.addr+"/") {
			t.Fatalf("exec answer %+v", resp.ContainerExecResponse)
		}
		return resp.ContainerExecResponse
	}
	exec := func(cmd string) aci.ContainerExecResponse { t.Helper(); return execSized(cmd, 24, 80) }

	t.Run("OutputAndExitCode", func(t *testing.T) {
		r := exec(`sh -c "echo hello from exec; exit 3"`)
		ws := dialSession(t, b, *r.WebSocketURI, nil)
		ws.send(t, websocket.MessageText, *r.Password)
		out, status, reason := ws.finish(t)
		if !strings.Contains(out, "hello from exec") || status != websocket.StatusNormalClosure || reason != `{"exitCode":3}` {
			t.Errorf("output %q, close %d %q", out, status, reason)
		}
		// The password is one-shot.
		ws = dialSession(t, b, *r.WebSocketURI, nil)
		ws.send(t, websocket.MessageText, *r.Password)
		if _, status, _ := ws.finish(t); status != websocket.StatusPolicyViolation {
			t.Errorf("reused password: close %d, want 1008", status)
		}
	})

	t.Run("Interactive", func(t *testing.T) {
		// az sends no resize messages: the exec request's terminalSize is
		// the terminal's size.
		r := execSized("/bin/sh", 37, 132)
		ws := dialSession(t, b, *r.WebSocketURI, nil)
		ws.send(t, websocket.MessageText, *r.Password)
		ws.send(t, websocket.MessageBinary, "echo $((6*7)) in $(stty size)\n")
		ws.readUntil(t, "42 in 37 132")
		ws.send(t, websocket.MessageBinary, "exit 5\n")
		if _, status, reason := ws.finish(t); status != websocket.StatusNormalClosure || reason != `{"exitCode":5}` {
			t.Errorf("close %d %q", status, reason)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		r := exec("true")
		ws := dialSession(t, b, *r.WebSocketURI, nil)
		ws.send(t, websocket.MessageText, "not-the-password")
		if _, status, _ := ws.finish(t); status != websocket.StatusPolicyViolation {
			t.Errorf("wrong password: close %d, want 1008", status)
		}
		ws = dialSession(t, b, *r.WebSocketURI, nil)
		ws.send(t, websocket.MessageText, *r.Password)
		if _, status, _ := ws.finish(t); status != websocket.StatusPolicyViolation {
			t.Errorf("after a wrong password: close %d, want 1008", status)
		}
	})

	t.Run("Attach", func(t *testing.T) {
		resp, err := s.ctrs.Attach(ctx, "rgexec", "web", "web", nil)
		if err != nil || resp.WebSocketURI == nil || resp.Password == nil {
			t.Fatalf("attach: %+v, %v", resp, err)
		}
		ws := dialSession(t, b, *resp.WebSocketURI, http.Header{"Authorization": {*resp.Password}})
		ws.readUntil(t, "listening on :8080")
		r := exec("sh -c 'echo written later > /proc/1/fd/1'")
		x := dialSession(t, b, *r.WebSocketURI, nil)
		x.send(t, websocket.MessageText, *r.Password)
		x.finish(t)
		ws.readUntil(t, "written later")
	})

	t.Run("LogsWithTimestamps", func(t *testing.T) {
		resp, err := s.ctrs.ListLogs(ctx, "rgexec", "web", "web", &aci.ContainersClientListLogsOptions{Timestamps: to.Ptr(true), Tail: to.Ptr[int32](1)})
		if err != nil || resp.Content == nil {
			t.Fatalf("logs: %v", err)
		}
		ts, _, _ := strings.Cut(*resp.Content, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("log line %q does not start with a time: %v", *resp.Content, err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		_, err := s.ctrs.ExecuteCommand(ctx, "rgexec", "web", "nope", aci.ContainerExecRequest{Command: to.Ptr("ls")}, nil)
		if respCode(err) != "ContainerNotFound" {
			t.Errorf("unknown container: %v", err)
		}
		_, err = s.ctrs.ExecuteCommand(ctx, "rgexec", "nogroup", "web", aci.ContainerExecRequest{Command: to.Ptr("ls")}, nil)
		if respCode(err) != "ResourceNotFound" {
			t.Errorf("unknown group: %v", err)
		}
		job := webGroup(b, image)
		job.Properties.RestartPolicy = to.Ptr(aci.ContainerGroupRestartPolicyNever)
		job.Properties.Containers[0].Properties.Command = []*string{to.Ptr("/app"), to.Ptr("exit"), to.Ptr("0")}
		createGroup(t, s, "rgexec", "job", job)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
			g, err := s.cgs.Get(ctx, "rgexec", "job", nil)
			if err == nil && *g.Properties.InstanceView.State == "Succeeded" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("job did not finish")
			}
		}
		_, err = s.ctrs.ExecuteCommand(ctx, "rgexec", "job", "web", aci.ContainerExecRequest{Command: to.Ptr("ls")}, nil)
		if respCode(err) != "ContainerNotRunning" {
			t.Errorf("terminated container: %v", err)
		}
		if _, err := s.ctrs.Attach(ctx, "rgexec", "job", "web", nil); respCode(err) != "ContainerNotRunning" {
			t.Errorf("attach to a terminated container: %v", err)
		}
	})
}
