package fake

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
)

// outcome is what a simulated process does next.
type outcome struct {
	code    int
	after   time.Duration // exit after this long
	forever bool          // runs until stopped
	retry   bool          // waiting for a file: simulate again shortly
}

// simulate runs c's command against the simulated filesystem, logging what
// the test image would print; final says a waiting "read" must give up.
// r.mu is held.
func (r *Runtime) simulate(g *group, c *container, final bool) outcome {
	args := c.spec.Command
	if len(args) == 0 {
		args = []string{"/app", "serve"}
	}
	if args[0] == "/app" || args[0] == "app" {
		args = args[1:]
	}
	mode, rest := "serve", []string(nil)
	if len(args) > 0 {
		mode, rest = args[0], args[1:]
	}
	arg := func(i int) string {
		if i < len(rest) {
			return rest[i]
		}
		return ""
	}
	fail := func(format string, a ...any) outcome {
		fmt.Fprintf(&c.logs, format+"\n", a...)
		return outcome{code: 1}
	}
	switch mode {
	case "echo":
		fmt.Fprintln(&c.logs, strings.Join(rest, " "))
	case "print-env":
		env := []string{"PATH=/bin"}
		for _, e := range c.spec.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		sort.Strings(env)
		for _, kv := range env {
			fmt.Fprintln(&c.logs, kv)
		}
	case "exit":
		code, _ := strconv.Atoi(arg(0))
		return outcome{code: code}
	case "sleep":
		s, _ := strconv.ParseFloat(arg(0), 64)
		return outcome{after: time.Duration(s * float64(time.Second))}
	case "fetch":
	case "read":
		v, rel, _ := g.resolve(c, arg(0))
		b, ok := v.files[rel]
		switch {
		case !ok && !final:
			return outcome{retry: true}
		case !ok:
			return fail("open %s: no such file or directory", arg(0))
		case v.kind == runtime.VolumeSecret && !v.readableBy(c.spec.Security):
			return fail("open %s: permission denied", arg(0))
		}
		c.logs.Write(b)
	case "write", "mkdir":
		v, rel, ro := g.resolve(c, arg(0))
		if ro {
			return fail("open %s: read-only file system", arg(0))
		}
		if mode == "mkdir" {
			fmt.Fprintln(&c.logs, "made", arg(0))
			break
		}
		v.files[rel] = []byte(arg(1))
		fmt.Fprintln(&c.logs, "wrote", arg(0))
	case "stat":
		v, rel, _ := g.resolve(c, arg(0))
		_, isFile := v.files[rel]
		mode, uid, gid := 0o644, int64(0), int64(0)
		switch {
		case v.kind == runtime.VolumeSecret && rel == "":
			mode, uid, gid = 0o500, v.uid, v.gid
		case v.kind == runtime.VolumeSecret && isFile:
			mode, uid, gid = 0o400, v.uid, v.gid
		case rel == "" && v.kind != "":
			mode = 0o777
		case !isFile:
			return fail("stat %s: no such file or directory", arg(0))
		}
		fmt.Fprintf(&c.logs, "mode=%04o uid=%d gid=%d\n", mode, uid, gid)
	case "id":
		uid, gid := ids(c.spec.Security)
		fmt.Fprintf(&c.logs, "uid=%d gid=%d\n", uid, gid)
	case "alloc":
		mb, _ := strconv.Atoi(arg(0))
		if c.spec.MemoryBytes > 0 && int64(mb)<<20 > c.spec.MemoryBytes {
			c.oom = true
			return outcome{code: 137}
		}
		fmt.Fprintf(&c.logs, "allocated %d MiB\n", mb)
	default: // serve: runs until told otherwise
		fmt.Fprintf(&c.logs, "listening on :%s\n", envOr(c.spec.Env, "PORT", "8080"))
		return outcome{forever: true}
	}
	return outcome{}
}

// readWait is how long a "read FILE SECS" command waits for its file.
func readWait(cmd []string) time.Duration {
	if len(cmd) > 0 && (cmd[0] == "/app" || cmd[0] == "app") {
		cmd = cmd[1:]
	}
	if len(cmd) < 3 || cmd[0] != "read" {
		return 0
	}
	s, _ := strconv.ParseFloat(cmd[2], 64)
	return time.Duration(s * float64(time.Second))
}

// ids are the uid and gid a security context runs as (0 when unset, as for
// the test image, which has no /etc/passwd).
func ids(sc *runtime.SecurityContext) (uid, gid int64) {
	if sc != nil && sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc != nil && sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	return uid, gid
}

// volume is a simulated directory tree: files by path relative to its root.
type volume struct {
	kind     runtime.VolumeKind // "" for a container's own files
	files    map[string][]byte
	readOnly bool  // every mount is read-only (secrets, read-only shares)
	uid, gid int64 // owner of a secret's files
}

func newVolume(kind runtime.VolumeKind) *volume {
	return &volume{kind: kind, files: map[string][]byte{}}
}

// readableBy reports whether a process with sc reads a secret's files
// (mode 0400): root, or the owner.
func (v *volume) readableBy(sc *runtime.SecurityContext) bool {
	uid, _ := ids(sc)
	return uid == 0 || uid == v.uid
}

// resolve finds which volume path p of container c is in (its own files if
// no mount holds it), p's path inside it, and whether it is read-only there.
func (g *group) resolve(c *container, p string) (v *volume, rel string, ro bool) {
	p = path.Clean("/" + p)
	best := ""
	var mount runtime.Mount
	for _, m := range c.spec.Mounts {
		mp := path.Clean(m.Path)
		if (p == mp || strings.HasPrefix(p, mp+"/")) && len(mp) > len(best) {
			best, mount = mp, m
		}
	}
	if best == "" {
		return c.rootfs, p, false
	}
	v = g.volumes[mount.Volume]
	return v, strings.TrimPrefix(strings.TrimPrefix(p, best), "/"), mount.ReadOnly || v.readOnly
}
