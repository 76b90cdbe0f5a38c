// Package terminal serves the websocket end of ACI's exec and attach, on
// berth's main TLS listener under PathPrefix (outside ARM: the password is
// the credential, as on Azure). The ARM handlers answer exec and attach with
// URL(…) and a one-shot password from the container-group service; this
// package redeems it and pipes the session.
//
// The protocol is the one `az container exec` speaks:
//
//   - The client opens the webSocketUri. For attach, the password may come
//     as the Authorization header of that request (as the API documents);
//     otherwise the first message the client sends is the password.
//   - Exec: every later client message (text or binary) is the process's
//     input, sent to its terminal as is. Attach ignores client messages.
//   - The server sends the output as it comes: text messages while it is
//     valid UTF-8 (older clients write text messages to stdout as strings),
//     binary messages otherwise.
//   - When the process ends (exec), the server closes the websocket with
//     status 1000 and the reason {"exitCode":N}; attach ends (1000, no
//     reason) when the container group is deleted. A wrong, used or expired
//     password is answered with status 1008 (policy violation), or HTTP 401
//     when it came as a header; a session that cannot start sends its reason
//     as a text message and closes with 1011.
//
// The terminal's size is fixed when exec is called (terminalSize): az sends
// no resize messages (its websocket carries the password, then keystrokes),
// so no client message is read as one. The client closing the websocket
// kills the process.
package terminal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
)

// PathPrefix is where sessions are served: PathPrefix + session id.
const PathPrefix = "/_berth/exec/"

// passwordTimeout bounds the wait for the password message.
const passwordTimeout = 30 * time.Second

// URL is the webSocketUri of session id for a client that reached berth at
// base (scheme://host[:port]); rows and cols (when > 0) echo the terminal
// size, as ACI's URIs do.
func URL(base, id string, rows, cols int) string {
	u := base
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + strings.TrimPrefix(u, "http://")
	}
	u += PathPrefix + url.PathEscape(id)
	if rows > 0 && cols > 0 {
		u += "?rows=" + strconv.Itoa(rows) + "&cols=" + strconv.Itoa(cols)
	}
	return u
}

// Sessions opens sessions by ticket (aci.Service).
type Sessions interface {
	OpenSession(ctx context.Context, id, password string) (*aci.Session, error)
}

// Handler serves sessions. It needs the raw connection: mount it where
// the ResponseWriter can be hijacked.
type Handler struct {
	Sessions Sessions
	Log      *slog.Logger
}

func (h *Handler) logger() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// ServeHTTP upgrades to a websocket and runs the session.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || id == "" || strings.Contains(id, "/") {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var sess *aci.Session
	if auth := r.Header.Get("Authorization"); auth != "" {
		// The password as a header (attach, as documented): refuse before
		// upgrading.
		s, err := h.Sessions.OpenSession(ctx, id, strings.TrimPrefix(auth, "Bearer "))
		if err != nil {
			writeHTTPError(w, err)
			return
		}
		sess = s
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		if sess != nil {
			sess.Close()
		}
		return // Accept answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)

	if sess == nil {
		pctx, pcancel := context.WithTimeout(ctx, passwordTimeout)
		_, pw, err := c.Read(pctx)
		pcancel()
		if err != nil {
			c.Close(websocket.StatusPolicyViolation, "no password")
			return
		}
		sess, err = h.Sessions.OpenSession(ctx, id, string(pw))
		if err != nil {
			e := apierr.As(err)
			if e.Class == apierr.Unauthenticated {
				c.Close(websocket.StatusPolicyViolation, "invalid, used or expired password")
				return
			}
			if e.Class == apierr.Internal {
				h.logger().Warn("opening a session", "session", id, "err", err)
			}
			c.Write(ctx, websocket.MessageText, []byte(e.Message+"\r\n"))
			c.Close(websocket.StatusInternalError, truncate(e.Code, 120))
			return
		}
	}
	defer sess.Close()
	h.logger().Debug("session opened", "session", id, "kind", sess.Kind)
	h.run(ctx, c, sess)
	h.logger().Debug("session ended", "session", id, "kind", sess.Kind)
}

// run pipes a session until its output ends or the client goes.
func (h *Handler) run(ctx context.Context, c *websocket.Conn, sess *aci.Session) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Client messages: the process's input. The client closing (or
	// failing) ends the session.
	go func() {
		defer cancel()
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if sess.Input != nil && len(msg) > 0 {
				if _, err := sess.Input.Write(msg); err != nil {
					// The process no longer reads; keep reading the
					// client until it closes.
					sess.Input = nil
				}
			}
		}
	}()
	outDone := make(chan error, 1)
	go func() { outDone <- copyOutput(ctx, c, sess.Output) }()
	select {
	case <-ctx.Done(): // the client went: Close (deferred) kills the process
		return
	case err := <-outDone:
		if err != nil {
			return
		}
	}
	reason := ""
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	code, ok, err := sess.Wait(wctx)
	wcancel()
	if err != nil {
		c.Close(websocket.StatusInternalError, "the process could not be waited for")
		return
	}
	if ok {
		b, _ := json.Marshal(struct {
			ExitCode int `json:"exitCode"`
		}{code})
		reason = string(b)
	}
	c.Close(websocket.StatusNormalClosure, reason)
}

// copyOutput sends r as messages until EOF: text while valid UTF-8 (a
// character cut by a read waits for its rest), binary otherwise.
func copyOutput(ctx context.Context, c *websocket.Conn, r io.Reader) error {
	buf := make([]byte, 32<<10)
	carry := 0 // bytes of an incomplete character at the start of buf
	for {
		n, err := r.Read(buf[carry:])
		n += carry
		carry = 0
		if n > 0 {
			msg := buf[:n]
			if err == nil {
				carry = incompleteTail(msg)
				msg = msg[:n-carry]
			}
			if len(msg) > 0 {
				typ := websocket.MessageText
				if !utf8.Valid(msg) {
					typ = websocket.MessageBinary
				}
				if werr := c.Write(ctx, typ, msg); werr != nil {
					return werr
				}
			}
			copy(buf, buf[n-carry:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// incompleteTail returns how many bytes at the end of b begin a UTF-8
// character that is not complete yet (0 to 3).
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: nothing pending
		}
		if c >= 0xF8 {
			return 0 // never valid
		}
		if c >= 0xC0 { // a leading byte: is its character complete?
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if need > i {
				return i
			}
			return 0
		}
	}
	return 0
}

// writeHTTPError answers a refused upgrade.
func writeHTTPError(w http.ResponseWriter, err error) {
	e := apierr.As(err)
	status := http.StatusBadRequest
	switch e.Class {
	case apierr.Unauthenticated:
		status = http.StatusUnauthorized
	case apierr.Conflict:
		status = http.StatusConflict
	case apierr.Internal:
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("x-ms-error-code", e.Code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": e.Code, "message": e.Message}})
	fmt.Fprintln(w, string(b))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
