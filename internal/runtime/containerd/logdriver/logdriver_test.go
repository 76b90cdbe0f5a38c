package logdriver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the driver for TestDriverProcess.
	if len(os.Args) > 1 && os.Args[1] == Command {
		os.Exit(Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func read(t *testing.T, src Source, opts Options) string {
	t.Helper()
	rc := Open(context.Background(), src, opts)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newWriter(t *testing.T, path string, max int64) *Writer {
	t.Helper()
	w, err := NewWriter(path, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

var stamped = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z `)

func TestWriteRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w := newWriter(t, path, MaxFileSize)
	w.Copy("stdout", strings.NewReader("one\ntwo\n"))
	w.Copy("stderr", strings.NewReader("three\nno newline"))
	src := Source{File: path}

	if got := read(t, src, Options{}); got != "one\ntwo\nthree\nno newline" {
		t.Errorf("log = %q", got)
	}
	if got := read(t, src, Options{Tail: 2}); got != "three\nno newline" {
		t.Errorf("tail 2 = %q", got)
	}
	if got := read(t, src, Options{Tail: 10}); got != "one\ntwo\nthree\nno newline" {
		t.Errorf("tail 10 = %q", got)
	}
	ts := read(t, src, Options{Timestamps: true, Tail: 3})
	lines := strings.Split(ts, "\n")
	if len(lines) != 3 {
		t.Fatalf("timestamps: %q", ts)
	}
	for i, want := range []string{"two", "three", "no newline"} {
		if !stamped.MatchString(lines[i]) || stamped.ReplaceAllString(lines[i], "") != want {
			t.Errorf("line %d = %q, want a time and %q", i, lines[i], want)
		}
	}
	// The file records the stream.
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), " stderr F three\n") || !strings.Contains(string(raw), " stdout F one\n") {
		t.Errorf("file = %q", raw)
	}
	if got := read(t, Source{File: filepath.Join(t.TempDir(), "none.log")}, Options{Tail: 3}); got != "" {
		t.Errorf("missing file = %q", got)
	}
}

func TestLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w := newWriter(t, path, MaxFileSize)
	long := strings.Repeat("x", 3*maxRecord+5)
	w.Copy("stdout", strings.NewReader("a\n"+long+"\nb\n"))
	raw, _ := os.ReadFile(path)
	if n := strings.Count(string(raw), " P "); n != 3 {
		t.Errorf("%d partial records, want 3", n)
	}
	if got := read(t, Source{File: path}, Options{}); got != "a\n"+long+"\nb\n" {
		t.Errorf("long line not read back whole (%d bytes)", len(got))
	}
	if got := read(t, Source{File: path}, Options{Tail: 2}); got != long+"\nb\n" {
		t.Errorf("tail 2 of a long line: %d bytes", len(got))
	}
	got := read(t, Source{File: path}, Options{Tail: 2, Timestamps: true})
	if strings.Count(got, "Z ") != 2 {
		t.Errorf("a long line got more than one time stamp")
	}
}

func TestRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	const max = 4 << 10
	w := newWriter(t, path, max)
	var all strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&all, "line %04d\n", i)
	}
	w.Copy("stdout", strings.NewReader(all.String()))
	st1, err1 := os.Stat(Rotated(path))
	st, err := os.Stat(path)
	if err != nil || err1 != nil || st.Size() > max || st1.Size() > max {
		t.Fatalf("files after rotation: %v %v %v %v", st, err, st1, err1)
	}
	got := read(t, Source{File: path}, Options{})
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) < 100 || lines[len(lines)-1] != "line 0999" {
		t.Fatalf("kept %d lines ending %q", len(lines), lines[len(lines)-1])
	}
	first := 1000 - len(lines)
	for i, l := range lines {
		if want := fmt.Sprintf("line %04d", first+i); l != want {
			t.Fatalf("line %d = %q, want %q (in order, nothing missing)", i, l, want)
		}
	}
	if got := read(t, Source{File: path}, Options{Tail: 3}); got != "line 0997\nline 0998\nline 0999\n" {
		t.Errorf("tail 3 = %q", got)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w := newWriter(t, path, 4<<10)
	w.Copy("stdout", strings.NewReader("before\n"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc := Open(ctx, Source{File: path}, Options{Follow: true, Tail: 1, Poll: time.Millisecond})
	defer rc.Close()
	br := bufio.NewReader(rc)
	expect := func(want string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || line != want+"\n" {
			t.Fatalf("followed %q, %v; want %q", line, err, want)
		}
	}
	expect("before")
	// Batches smaller than a file: a follower that keeps up never misses a
	// rotated file.
	for batch := range 40 {
		var b strings.Builder
		for i := range 50 {
			fmt.Fprintf(&b, "line %04d\n", batch*50+i)
		}
		w.Copy("stdout", strings.NewReader(b.String()))
		for i := range 50 {
			expect(fmt.Sprintf("line %04d", batch*50+i))
		}
	}
	if _, err := os.Stat(Rotated(path)); err != nil {
		t.Fatalf("no rotation happened: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFollowEndsWhenGone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.log")
	gone := make(chan struct{})
	src := Source{File: path, Gone: func() bool {
		select {
		case <-gone:
			return true
		default:
			return false
		}
	}}
	rc := Open(context.Background(), src, Options{Follow: true, Poll: time.Millisecond})
	defer rc.Close()
	w := newWriter(t, path, MaxFileSize) // the file appears after the follow began
	w.Copy("stdout", strings.NewReader("hello\n"))
	br := bufio.NewReader(rc)
	if line, err := br.ReadString('\n'); line != "hello\n" || err != nil {
		t.Fatalf("followed %q, %v", line, err)
	}
	w.Copy("stdout", strings.NewReader("last words\n"))
	close(gone)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "last words\n" {
		t.Fatalf("after gone: %q, %v", rest, err)
	}
}

func TestFollowEndsWithContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	newWriter(t, path, MaxFileSize).Copy("stdout", strings.NewReader("x\n"))
	ctx, cancel := context.WithCancel(context.Background())
	rc := Open(ctx, Source{File: path}, Options{Follow: true, Poll: time.Millisecond})
	defer rc.Close()
	br := bufio.NewReader(rc)
	br.ReadString('\n')
	cancel()
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestLegacy(t *testing.T) {
	dir := t.TempDir()
	legacy, path := filepath.Join(dir, "old.log"), filepath.Join(dir, "c.log")
	if err := os.WriteFile(legacy, []byte("old one\nold two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := Source{File: path, Legacy: legacy}
	if got := read(t, src, Options{Timestamps: true}); got != "old one\nold two\n" {
		t.Errorf("legacy only = %q", got)
	}
	newWriter(t, path, MaxFileSize).Copy("stdout", strings.NewReader("new\n"))
	if got := read(t, src, Options{}); got != "old one\nold two\nnew\n" {
		t.Errorf("legacy + new = %q", got)
	}
	if got := read(t, src, Options{Tail: 2}); got != "old two\nnew\n" {
		t.Errorf("tail 2 = %q", got)
	}
	got := read(t, src, Options{Tail: 2, Timestamps: true})
	if !strings.HasPrefix(got, "old two\n") || !stamped.MatchString(strings.TrimPrefix(got, "old two\n")) {
		t.Errorf("timestamps across legacy and new = %q", got)
	}
}

// TestDriverProcess runs the driver as the shim does: a process with the
// streams on descriptors 3 and 4, ready signalled by closing 5.
func TestDriverProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	readyR, readyW, _ := os.Pipe()
	cmd := exec.Command(os.Args[0], Command, path)
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outR.Close()
	errR.Close()
	readyW.Close()
	if _, err := readyR.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("ready: %v", err)
	}
	if !Writing(path) {
		t.Error("Writing = false while the driver runs")
	}
	fmt.Fprintln(outW, "to stdout")
	fmt.Fprintln(errW, "to stderr")
	outW.Close()
	errW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driver: %v", err)
	}
	if Writing(path) {
		t.Error("Writing = true after the driver exited")
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), " stdout F to stdout\n") || !strings.Contains(string(raw), " stderr F to stderr\n") {
		t.Errorf("driver wrote %q", raw)
	}
}

// TestLegacyTail tails a large plain file (earlier berths') across read
// chunks.
func TestLegacyTail(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "old.log")
	var content strings.Builder
	for i := 0; i < 20000; i++ {
		content.WriteString(strings.Repeat("x", i%13) + "\n")
	}
	content.WriteString("last line, unterminated")
	if err := os.WriteFile(legacy, []byte(content.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	all := strings.SplitAfter(content.String(), "\n")
	src := Source{File: filepath.Join(dir, "c.log"), Legacy: legacy}
	for _, n := range []int{0, 1, 2, 5000, 20001, 30000} {
		want := content.String()
		if n > 0 && n < len(all) {
			want = strings.Join(all[len(all)-n:], "")
		}
		if got := read(t, src, Options{Tail: n}); got != want {
			t.Errorf("tail %d: got %d bytes, want %d", n, len(got), len(want))
		}
	}
	if got := read(t, src, Options{Tail: 2}); got != strings.Repeat("x", 19999%13)+"\nlast line, unterminated" {
		t.Errorf("tail 2 = %q", got)
	}
}

// TestTailAcrossSplitLine tails a log whose last rotation split a long line
// between the rotated file and the current one: the line counts once.
func TestTailAcrossSplitLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	const ts = "2026-12-01T10:00:00.000000000Z"
	rotated := ts + " stdout F a\n" + ts + " stdout F b\n" + ts + " stdout P xxx\n"
	current := ts + " stdout P yyy\n" + ts + " stdout F zzz\n" + ts + " stdout F c\n"
	if err := os.WriteFile(Rotated(path), []byte(rotated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(current), 0o644); err != nil {
		t.Fatal(err)
	}
	src := Source{File: path}
	for n, want := range map[int]string{
		1: "c\n",
		2: "xxxyyyzzz\nc\n",
		3: "b\nxxxyyyzzz\nc\n",
		4: "a\nb\nxxxyyyzzz\nc\n",
		9: "a\nb\nxxxyyyzzz\nc\n",
	} {
		if got := read(t, src, Options{Tail: n}); got != want {
			t.Errorf("tail %d = %q, want %q", n, got, want)
		}
	}
}
