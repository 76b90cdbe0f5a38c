// Command app is the program inside berth's test image (see package
// testimage). It is static (CGO_ENABLED=0) and has a few modes, chosen by its
// first argument:
//
//	serve             HTTP server on $PORT (default 8080): GET / answers a JSON
//	                  object of the environment; GET /exit?code=N answers, then
//	                  exits with code N; GET /healthz answers 200 while healthy
//	                  and 500 while not (healthy at start unless $HEALTHY is
//	                  "false"; GET /health?ok=true|false switches), and 400
//	                  without the header $HEALTH_HEADER ("Name: value") when
//	                  that is set. This is the image's default command.
//	echo ARGS...      prints ARGS separated by spaces, exits 0.
//	exit N            exits with code N.
//	sleep SECONDS     sleeps, then exits 0.
//	print-env         prints the environment as sorted NAME=VALUE lines, exits 0.
//	lines N SIZE      prints N lines of SIZE bytes ("<i> xxx…", newline
//	                  included), exits 0.
//	fetch URL         GETs URL until it answers 2xx (up to 60 s), prints the
//	                  body, exits 0; exits 1 if it never does.
//	probe URL SECS    GETs URL once, waiting at most SECS seconds (resolving
//	                  names through /etc/resolv.conf), prints REACHED if it
//	                  answers at all, else UNREACHABLE, exits 0.
//	status URL        GETs URL (HTTPS without verifying the certificate, as
//	                  the image has no CA) until it answers at all (up to
//	                  60 s), prints "status N", exits 0; exits 1 if it never
//	                  does.
//	read FILE [SECS]  prints FILE's contents, exits 0; waits up to SECS
//	                  seconds for it to exist; exits 1 if it cannot be read.
//	write FILE TEXT   writes TEXT to FILE (created mode 0644), prints
//	                  "wrote FILE", exits 0; exits 1 with the error if it
//	                  cannot.
//	mkdir DIR         creates DIR, prints "made DIR", exits 0; exits 1 with
//	                  the error if it cannot.
//	stat PATH         prints "mode=0NNN uid=U gid=G" of PATH, exits 0; exits
//	                  1 if it cannot.
//	id                prints "uid=U gid=G" of the process, exits 0.
//	alloc MB          allocates MB MiB and writes to every page, prints
//	                  "allocated MB MiB", exits 0 (killed instead if over
//	                  its memory limit).
//	acr-repos URL     with the group's managed identity (the instance
//	                  metadata endpoint, through azidentity), lists the
//	                  repositories of the registry at URL (see acr.go).
//	imds RES URL N    asks the instance metadata endpoint (169.254.169.254)
//	                  for a token for resource RES without the Metadata
//	                  header ("nometa STATUS BODY") and with it ("raw STATUS
//	                  [BODY]"); if that worked, gets one with azidentity's
//	                  ManagedIdentityCredential ("token ok"), GETs URL (HTTPS,
//	                  unverified) with it ("arm STATUS BODY"), then times N
//	                  token requests ("p50 D p99 D n N"). Exits 0; 1 on
//	                  errors.
//
// SIGTERM and SIGINT make every mode exit at once with code 0.
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		os.Exit(0)
	}()

	args := os.Args[1:]
	if len(args) == 0 {
		args = []string{"serve"}
	}
	os.Exit(run(args[0], args[1:]))
}

func run(mode string, args []string) int {
	switch mode {
	case "serve":
		return serve()
	case "echo":
		fmt.Println(strings.Join(args, " "))
		return 0
	case "exit":
		code, err := strconv.Atoi(first(args))
		if err != nil {
			fmt.Fprintln(os.Stderr, "exit: want a number")
			return 2
		}
		return code
	case "sleep":
		secs, err := strconv.ParseFloat(first(args), 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sleep: want seconds")
			return 2
		}
		time.Sleep(time.Duration(secs * float64(time.Second)))
		return 0
	case "print-env":
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			fmt.Println(kv)
		}
		return 0
	case "lines":
		return lines(args)
	case "fetch":
		return fetch(first(args))
	case "imds":
		return imds(args)
	case "probe":
		secs := 3.0
		if len(args) > 1 {
			if v, err := strconv.ParseFloat(args[1], 64); err == nil {
				secs = v
			}
		}
		c := &http.Client{Timeout: time.Duration(secs * float64(time.Second))}
		resp, err := c.Get(first(args))
		if err != nil {
			fmt.Println("UNREACHABLE")
			return 0
		}
		resp.Body.Close()
		fmt.Println("REACHED")
		return 0
	case "status":
		return status(first(args))
	case "read":
		return read(args)
	case "write":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "write: want FILE TEXT")
			return 2
		}
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("wrote", args[0])
		return 0
	case "mkdir":
		if err := os.Mkdir(first(args), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("made", first(args))
		return 0
	case "stat":
		var st syscall.Stat_t
		if err := syscall.Stat(first(args), &st); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("mode=%04o uid=%d gid=%d\n", st.Mode&0o7777, st.Uid, st.Gid)
		return 0
	case "id":
		fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
		return 0
	case "alloc":
		mb, err := strconv.Atoi(first(args))
		if err != nil || mb < 0 {
			fmt.Fprintln(os.Stderr, "alloc: want MiB")
			return 2
		}
		return alloc(mb)
	case "acr-repos":
		return acrRepos(first(args))
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", mode)
		return 2
	}
}

func read(args []string) int {
	wait := 0.0
	if len(args) > 1 {
		wait, _ = strconv.ParseFloat(args[1], 64)
	}
	deadline := time.Now().Add(time.Duration(wait * float64(time.Second)))
	for {
		b, err := os.ReadFile(first(args))
		if err == nil {
			os.Stdout.Write(b)
			return 0
		}
		if !os.IsNotExist(err) || time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sink keeps alloc's memory reachable.
var sink [][]byte

func alloc(mb int) int {
	page := os.Getpagesize()
	for i := 0; i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += page {
			b[j] = 1
		}
		sink = append(sink, b)
	}
	fmt.Printf("allocated %d MiB\n", mb)
	return 0
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func environ() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func serve() int {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(environ())
	})
	var healthy atomic.Bool
	healthy.Store(os.Getenv("HEALTHY") != "false")
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if h := os.Getenv("HEALTH_HEADER"); h != "" {
			name, value, _ := strings.Cut(h, ":")
			if r.Header.Get(strings.TrimSpace(name)) != strings.TrimSpace(value) {
				http.Error(w, "missing header "+name, http.StatusBadRequest)
				return
			}
		}
		if !healthy.Load() {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		healthy.Store(r.URL.Query().Get("ok") == "true")
		fmt.Fprintf(w, "healthy: %v\n", healthy.Load())
	})
	mux.HandleFunc("GET /exit", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, "code: want a number", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "exiting with code %d\n", code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() {
			time.Sleep(50 * time.Millisecond) // let the answer leave
			os.Exit(code)
		}()
	})
	fmt.Printf("listening on :%s\n", port)
	if err := http.ListenAndServe(":"+port, mux); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func lines(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "lines: want N SIZE")
		return 2
	}
	n, err1 := strconv.Atoi(args[0])
	size, err2 := strconv.Atoi(args[1])
	if err1 != nil || err2 != nil || size < 1 {
		fmt.Fprintln(os.Stderr, "lines: want N SIZE")
		return 2
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < n; i++ {
		line := strconv.Itoa(i) + " "
		if pad := size - 1 - len(line); pad > 0 {
			line += strings.Repeat("x", pad)
		}
		w.WriteString(line + "\n")
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

func status(url string) int {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			fmt.Printf("status %d\n", resp.StatusCode)
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "status %s: %v\n", url, err)
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fetch(url string) int {
	deadline := time.Now().Add(60 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode/100 == 2 {
				os.Stdout.Write(body)
				return 0
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "fetch %s: %v\n", url, err)
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
}
