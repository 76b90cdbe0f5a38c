package logdriver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Source names a container's log files.
type Source struct {
	// File is the driver's log file (its rotated predecessor is
	// Rotated(File)).
	File string
	// Legacy is a plain log file written by cio.LogFile (earlier berths),
	// read before File; "" for none.
	Legacy string
	// Gone reports that the container's logs are gone for good (its group
	// was deleted): a follow ends.
	Gone func() bool
}

// Options select what Open returns.
type Options struct {
	// Tail > 0 keeps only the last Tail lines.
	Tail int
	// Timestamps prefixes each line with its time and a space (lines of a
	// legacy file have none and get no prefix).
	Timestamps bool
	// Follow keeps reading as lines are written, until ctx ends, the
	// reader is closed or Source.Gone says so.
	Follow bool
	// Poll is how often a follow looks for new lines; default 50 ms.
	Poll time.Duration
}

// Open streams the log of src. Files are read as they go, never whole into
// memory. A missing file is an empty log.
func Open(ctx context.Context, src Source, opts Options) io.ReadCloser {
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if src.Gone == nil {
		src.Gone = func() bool { return false }
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	s := &stream{ctx: ctx, src: src, opts: opts, w: pw, atStart: true}
	go func() {
		defer cancel()
		pw.CloseWithError(s.run())
	}()
	return &readCloser{PipeReader: pr, cancel: cancel}
}

type readCloser struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *readCloser) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// segment is one file to read: plain (legacy) or records.
type segment struct {
	path  string
	plain bool
}

// stream copies the log into w.
type stream struct {
	ctx  context.Context
	src  Source
	opts Options
	w    *io.PipeWriter

	skip    int  // logical lines still to skip (tail)
	atStart bool // the next output starts a line
	out     []byte
}

func (s *stream) run() error {
	segs := []segment{{path: s.src.Legacy, plain: true}, {path: Rotated(s.src.File)}, {path: s.src.File}}
	if s.src.Legacy == "" {
		segs = segs[1:]
	}
	// Open every file first, so that a rotation while reading does not
	// show a file twice or skip one.
	files := make([]*os.File, len(segs))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := len(segs) - 1; i >= 0; i-- {
		f, err := os.Open(segs[i].path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		files[i] = f
	}
	if n := len(files); n >= 2 && files[n-1] != nil && files[n-2] != nil && sameFile(files[n-1], files[n-2]) {
		files[n-2].Close() // rotated between the two opens: read it once
		files[n-2] = nil
	}

	if s.opts.Tail > 0 {
		// The files are one stream: a line the rotation split between
		// two files is one line, counted once.
		total, open := 0, false
		for i, f := range files {
			if f == nil {
				continue
			}
			n, o, err := countLines(f, segs[i].plain, open)
			if err != nil {
				return err
			}
			total, open = total+n, o
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		if open {
			total++
		}
		s.skip = max(total-s.opts.Tail, 0)
	}

	// The last file that exists is followed; the ones before are read.
	last := -1
	for i, f := range files {
		if f != nil {
			last = i
		}
	}
	for i := 0; i < last; i++ {
		if files[i] == nil {
			continue
		}
		if err := s.copyAll(newLineFile(files[i]), segs[i].plain); err != nil {
			return err
		}
	}
	if !s.opts.Follow {
		if last >= 0 {
			return s.copyAll(newLineFile(files[last]), segs[last].plain)
		}
		return nil
	}
	var cur *lineFile
	plain := false
	if last >= 0 {
		cur, plain = newLineFile(files[last]), segs[last].plain
		files[last] = nil // closed by follow
	}
	return s.follow(cur, plain)
}

// copyAll copies a file that is not followed.
func (s *stream) copyAll(lf *lineFile, plain bool) error {
	for {
		line, complete, err := lf.next()
		if err == io.EOF {
			if rest := lf.rest(); len(rest) > 0 {
				return s.emit(rest, false, plain)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.emit(line, complete, plain); err != nil {
			return err
		}
	}
}

// follow copies cur (nil: no file yet) as it grows, moving to the driver's
// file when cur is replaced by a rotation or when the driver's file appears
// after a legacy one.
func (s *stream) follow(cur *lineFile, plain bool) error {
	defer func() {
		if cur != nil {
			cur.f.Close()
		}
	}()
	t := time.NewTicker(s.opts.Poll)
	defer t.Stop()
	for {
		if cur != nil {
			for {
				line, complete, err := cur.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if err := s.emit(line, complete, plain); err != nil {
					return err
				}
			}
			// At the end of cur: has the driver moved on to a new file?
			if moved, err := s.replaced(cur.f, plain); err != nil {
				return err
			} else if moved {
				if err := s.copyAll(cur, plain); err != nil { // what came since
					return err
				}
				cur.f.Close()
				cur = nil
			}
		}
		if cur == nil {
			f, err := os.Open(s.src.File)
			if err == nil {
				cur, plain = newLineFile(f), false
				continue
			}
			if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		if s.src.Gone() {
			if cur != nil {
				return s.copyAll(cur, plain)
			}
			return nil
		}
		select {
		case <-s.ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// replaced reports whether the file the driver writes is no longer f.
func (s *stream) replaced(f *os.File, plain bool) (bool, error) {
	st, err := os.Stat(s.src.File)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // not created yet, or being rotated
	}
	if err != nil {
		return false, err
	}
	if plain {
		return true, nil // the legacy file is done once the driver's exists
	}
	fst, err := f.Stat()
	if err != nil {
		return false, err
	}
	return !os.SameFile(st, fst), nil
}

// emit writes one line (complete) or a piece of one.
func (s *stream) emit(line []byte, complete, plain bool) error {
	rec := record{content: line, partial: !complete}
	if !plain && complete {
		rec = parseRecord(line)
	}
	start := s.atStart
	s.atStart = !rec.partial
	if s.skip > 0 {
		if !rec.partial {
			s.skip--
		}
		return nil
	}
	s.out = s.out[:0]
	if start && s.opts.Timestamps && rec.time != nil {
		s.out = append(s.out, rec.time...)
		s.out = append(s.out, ' ')
	}
	s.out = append(s.out, rec.content...)
	if !rec.partial {
		s.out = append(s.out, '\n')
	}
	_, err := s.w.Write(s.out)
	return err
}

// countLines counts the logical lines a file ends, given whether the file
// before it left a line open, and reports whether this one leaves a line
// open in turn.
func countLines(f *os.File, plain, open bool) (int, bool, error) {
	lf := newLineFile(f)
	n := 0
	for {
		line, complete, err := lf.next()
		if err == io.EOF {
			if len(lf.rest()) > 0 {
				open = true
			}
			return n, open, nil
		}
		if err != nil {
			return 0, false, err
		}
		partial := !complete || (!plain && parseRecord(line).partial)
		if partial {
			open = true
		} else {
			n++
			open = false
		}
	}
}

// lineFile reads lines from a file that may still grow.
type lineFile struct {
	f    *os.File
	buf  []byte
	off  int // start of unconsumed bytes in buf
	read [32 << 10]byte
}

// maxLine is the longest line lineFile returns whole; longer ones come in
// pieces.
const maxLine = 64 << 10

func newLineFile(f *os.File) *lineFile { return &lineFile{f: f} }

// next returns the next line without its newline (complete), or a piece of
// a line longer than maxLine (not complete). At the current end of the file
// it returns io.EOF, keeping an unterminated last line for later (rest).
// The slice is valid until the next call.
func (l *lineFile) next() ([]byte, bool, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.off:], '\n'); i >= 0 {
			line := l.buf[l.off : l.off+i]
			l.off += i + 1
			return line, true, nil
		}
		if len(l.buf)-l.off >= maxLine {
			piece := l.buf[l.off:]
			l.off = len(l.buf)
			return piece, false, nil
		}
		if l.off > 0 { // compact
			n := copy(l.buf, l.buf[l.off:])
			l.buf, l.off = l.buf[:n], 0
		}
		n, err := l.f.Read(l.read[:])
		l.buf = append(l.buf, l.read[:n]...)
		if n == 0 {
			if err == nil || err == io.EOF {
				return nil, false, io.EOF
			}
			return nil, false, err
		}
	}
}

// rest returns (and consumes) an unterminated last line.
func (l *lineFile) rest() []byte {
	r := l.buf[l.off:]
	l.off = len(l.buf)
	return r
}

func sameFile(a, b *os.File) bool {
	sa, err1 := a.Stat()
	sb, err2 := b.Stat()
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}
