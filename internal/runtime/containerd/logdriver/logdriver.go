// Package logdriver keeps container logs for the containerd runtime: a
// logging binary that containerd's shim starts for every task (the
// `binary://` log URI), and the reader that serves runtime.Runtime's Logs
// from what it wrote.
//
// The shim starts the binary as `<berth> log-driver <file>` with the task's
// stdout and stderr as file descriptors 3 and 4, and waits until descriptor 5
// is closed before it starts the task. The driver (Main) stamps every line
// with the time it read it and appends it to <file>, in the CRI log format:
//
//	2024-05-01T10:00:00.123456789Z stdout F a whole line
//	2024-05-01T10:00:00.123456790Z stderr P the first 16 KiB of a longer line…
//
// (time in UTC with nine fractional digits, stream, F for a line's last
// part or P for a part that continues in the next record, then the bytes).
// When the file reaches MaxFileSize it becomes <file>.1 (replacing the
// previous one) and a new file starts, so a container keeps between one and
// two MaxFileSize of its most recent output (ACI keeps 4 MB). The shim
// holds the driver, not berth: logs are written while berth is down. Each
// run of a container starts its own driver; runs append to the same file.
//
// Open reads the files back (tail, timestamps, follow across rotation) and
// also reads a plain log file written by earlier berths (cio.LogFile), which
// has no times.
package logdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Command is the (hidden) berth subcommand that runs the driver; the shim
// runs `<binary> Command <file>`.
const Command = "log-driver"

// MaxFileSize is the size at which the log file rotates.
const MaxFileSize = 2 << 20

// maxRecord is the longest piece of a line one record holds.
const maxRecord = 16 << 10

// timeLayout is RFC 3339 with a fixed nine-digit fraction, in UTC.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// Args are the query arguments of the `binary://` log URI that make the
// shim run `<binary> Command file`.
func Args(file string) map[string]string { return map[string]string{Command: file} }

// Rotated is the name file takes when it rotates.
func Rotated(file string) string { return file + ".1" }

// Main runs the driver with the descriptors the shim passes (3: stdout, 4:
// stderr, 5: closed when ready) and returns the exit code. args is the log
// file. It returns when both streams end; after SIGTERM (the shim's request
// to stop) it keeps copying for at most drainTimeout.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "usage: %s FILE (run by containerd's shim)\n", Command)
		return 2
	}
	stdout, stderr, ready := os.NewFile(3, "stdout"), os.NewFile(4, "stderr"), os.NewFile(5, "ready")
	lock, err := holdLock(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "log-driver:", err)
	} else {
		defer lock.Close()
	}
	w, err := NewWriter(args[0], MaxFileSize)
	if ready != nil {
		ready.Close() // the task may start; if the file failed, its output is dropped
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "log-driver:", err)
		w = nil
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range []struct {
		name string
		f    *os.File
	}{{"stdout", stdout}, {"stderr", stderr}} {
		if s.f == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w == nil {
				io.Copy(io.Discard, s.f)
				return
			}
			w.Copy(s.name, s.f)
		}()
	}
	go func() { wg.Wait(); close(done) }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	select {
	case <-done:
	case <-sigs:
		select {
		case <-done:
		case <-time.After(drainTimeout):
		}
	}
	if w != nil {
		w.Close()
	}
	return 0
}

// drainTimeout bounds how long the driver copies after SIGTERM.
const drainTimeout = 5 * time.Second

// Writer appends records to a log file, rotating it. It is safe for
// concurrent use (stdout and stderr copy at once).
type Writer struct {
	path    string
	maxSize int64

	mu   sync.Mutex
	f    *os.File
	size int64
	buf  []byte
	now  func() time.Time
}

// NewWriter opens (appending) or creates the log file at path; it rotates
// once the file reaches maxSize.
func NewWriter(path string, maxSize int64) (*Writer, error) {
	w := &Writer{path: path, maxSize: maxSize, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Copy reads stream's output from r until EOF, writing a record per line.
// What a read leaves after its last newline (a prompt, or a line longer than
// maxRecord) is written at once as a partial record, so that output shows
// as soon as it is written.
func (w *Writer) Copy(stream string, r io.Reader) error {
	buf := make([]byte, maxRecord)
	for {
		n, err := r.Read(buf)
		b := buf[:n]
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				w.write(stream, b, true)
				break
			}
			w.write(stream, b[:i], false)
			b = b[i+1:]
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// write appends one record. Write errors (a full disk) drop the record:
// the container must not block on its log.
func (w *Writer) write(stream string, b []byte, partial bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	tag := "F"
	if partial {
		tag = "P"
	}
	w.buf = w.now().UTC().AppendFormat(w.buf[:0], timeLayout)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, stream...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, tag...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, '\n')
	if w.size > 0 && w.size+int64(len(w.buf)) > w.maxSize {
		w.rotate()
		if w.f == nil {
			return
		}
	}
	n, _ := w.f.Write(w.buf)
	w.size += int64(n)
}

// rotate renames the file to its .1 name and starts a new one.
func (w *Writer) rotate() {
	w.f.Close()
	w.f = nil
	if err := os.Rename(w.path, Rotated(w.path)); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "log-driver: rotate:", err)
	}
	if err := w.open(); err != nil {
		fmt.Fprintln(os.Stderr, "log-driver: reopen:", err)
	}
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// record is one parsed line of the log file.
type record struct {
	time    []byte // as written; nil for plain (legacy) lines
	partial bool
	content []byte
}

// parseRecord splits a line (without its newline) of the CRI format. A line
// that does not parse is taken whole as content, without a time.
func parseRecord(line []byte) record {
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok || len(ts) != len(timeLayout) {
		return record{content: line}
	}
	_, rest, ok = bytes.Cut(rest, []byte{' '}) // stream
	if !ok {
		return record{content: line}
	}
	tag, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(tag) != 1 || (tag[0] != 'F' && tag[0] != 'P') {
		return record{content: line}
	}
	return record{time: ts, partial: tag[0] == 'P', content: content}
}

// A running driver holds a shared lock on <file>.lock from before the task
// starts until it exits, so that a reader can tell when every line of a
// finished task is in the file (see WaitIdle).
func lockPath(file string) string { return file + ".lock" }

func holdLock(file string) (*os.File, error) {
	f, err := os.OpenFile(lockPath(file), os.O_CREATE|os.O_RDONLY, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Writing reports whether a driver runs for file.
func Writing(file string) bool {
	f, err := os.Open(lockPath(file))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// WaitIdle waits until no driver runs for file (the drivers of finished
// tasks exit once the shim closes their streams), or ctx ends.
func WaitIdle(ctx context.Context, file string) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for Writing(file) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
