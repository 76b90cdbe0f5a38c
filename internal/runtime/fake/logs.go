package fake

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// logBuffer is a simulated container's log: lines with the time they were
// written. Writes (fmt.Fprintln from the simulation) are split into lines;
// followers are woken on every write and ended by close.
type logBuffer struct {
	mu      sync.Mutex
	lines   []logLine
	partial []byte        // an unterminated last write
	changed chan struct{} // closed (and replaced) on every change
	closed  bool
}

type logLine struct {
	at   time.Time
	text []byte // with its newline
}

// Write appends p, a line at a time.
func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := append(l.partial, p...)
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, logLine{at: time.Now().UTC(), text: bytes.Clone(buf[:i+1])})
		buf = buf[i+1:]
	}
	l.partial = bytes.Clone(buf)
	l.notifyLocked()
	return len(p), nil
}

func (l *logBuffer) notifyLocked() {
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}

// close ends every follow (the group was deleted).
func (l *logBuffer) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.notifyLocked()
}

// snapshot returns the lines from index from on, whether the buffer is
// closed, and a channel closed on the next change.
func (l *logBuffer) snapshot(from int) ([]logLine, bool, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	var out []logLine
	if from < len(l.lines) {
		out = append(out, l.lines[from:]...)
	}
	return out, l.closed, l.changed
}

// reader streams the log as runtime.Runtime's Logs does.
func (l *logBuffer) reader(ctx context.Context, opts runtime.LogOptions) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		defer cancel()
		lines, closed, changed := l.snapshot(0)
		next := len(lines)
		if opts.Tail > 0 && len(lines) > opts.Tail {
			lines = lines[len(lines)-opts.Tail:]
		}
		for {
			for _, ln := range lines {
				var b []byte
				if opts.Timestamps {
					b = append(ln.at.AppendFormat(b, "2006-01-02T15:04:05.000000000Z"), ' ')
				}
				if _, err := pw.Write(append(b, ln.text...)); err != nil {
					return
				}
			}
			if !opts.Follow || closed {
				// An unterminated last write shows too, as the log driver's
				// partial records do.
				if partial := l.pending(); len(partial) > 0 {
					var b []byte
					if opts.Timestamps {
						b = append(time.Now().UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z"), ' ')
					}
					_, _ = pw.Write(append(b, partial...))
				}
				pw.Close()
				return
			}
			select {
			case <-ctx.Done():
				pw.Close()
				return
			case <-changed:
			}
			lines, closed, changed = l.snapshot(next)
			next += len(lines)
		}
	}()
	return &logReader{PipeReader: pr, cancel: cancel}
}

type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// inherit copies what from holds (a container's earlier runs, when its
// group restarts) into l.
func (l *logBuffer) inherit(from *logBuffer) {
	from.mu.Lock()
	lines := append([]logLine(nil), from.lines...)
	partial := append([]byte(nil), from.partial...)
	from.mu.Unlock()
	l.mu.Lock()
	l.lines = append(l.lines, lines...)
	l.partial = append(l.partial, partial...)
	l.mu.Unlock()
}

// pending returns the unterminated last write.
func (l *logBuffer) pending() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.partial)
}
