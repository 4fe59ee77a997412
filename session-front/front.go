package main

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// maxConfigFile bounds what is read from -config.
const maxConfigFile = 8192

// session is what a front needs of its session: the password clients must send and the checkout OpenCode serves.
type session struct{ password, dir string }

// readConfig reads -config: the password on its first line, the session's directory on its second, both ending in a
// newline. Anything else (no file yet, or a file cut short) is an error: the front stays closed.
func readConfig(file string) (session, error) {
	f, err := os.Open(file)
	if err != nil {
		return session{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return session{}, err
	}
	if len(b) > maxConfigFile {
		return session{}, fmt.Errorf("%s is larger than %d bytes", file, maxConfigFile)
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) != 3 || lines[2] != "" {
		return session{}, fmt.Errorf("%s must hold two lines, the password and the directory", file)
	}
	s := session{password: strings.TrimSuffix(lines[0], "\n"), dir: strings.TrimSuffix(lines[1], "\n")}
	if s.password == "" {
		return session{}, fmt.Errorf("%s holds no password", file)
	}
	if !strings.HasPrefix(s.dir, "/") {
		return session{}, fmt.Errorf("%s names no absolute directory", file)
	}
	return s, nil
}

// gate is the front as it listens: 503 to everything until its session is configured, then that session's front for
// good. It starts in the session template, before any session exists, so it has no password of its own to accept.
type gate struct {
	up   *url.URL
	user string
	cur  atomic.Value // http.Handler, once configured
}

func newGate(up *url.URL, user string) *gate { return &gate{up: up, user: user} }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, _ := g.cur.Load().(http.Handler)
	if h == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "this session is not configured yet", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

// configure sets the session once; a second session (another config) is refused: a front serves one session.
func (g *gate) configure(s session) bool {
	return g.cur.CompareAndSwap(nil, newFront(g.up, s.dir, g.user, s.password))
}

// watch reads file every `every` until it holds a session, then configures the gate with it and returns.
func (g *gate) watch(file string, every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if s, err := readConfig(file); err == nil {
			g.configure(s)
			return
		}
		select {
		case <-t.C:
		case <-done:
			return
		}
	}
}

// newFront checks the password, then hands the request to OpenCode with the session's directory as the default.
func newFront(up *url.URL, dir, user, password string) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(up)
	proxy.FlushInterval = -1 // server-sent events reach the client as OpenCode writes them
	base := proxy.Director
	proxy.Director = func(r *http.Request) {
		base(r)
		// OpenCode reads ?directory= first, then this header, then its own cwd (the template's): the
		// header fills the gap only, so a client that names a directory keeps it.
		if r.Header.Get("x-opencode-directory") == "" {
			r.Header.Set("x-opencode-directory", dir)
		}
		// OpenCode behind the front has no password: nothing downstream needs this one.
		r.Header.Del("Authorization")
	}
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "OpenCode is not answering: "+err.Error(), http.StatusBadGateway)
	}
	wantUser, wantPw := []byte(user), []byte(password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		// Both compared in full, in constant time: the answer says nothing about which part was wrong.
		userOK := subtle.ConstantTimeCompare([]byte(u), wantUser) == 1
		pwOK := subtle.ConstantTimeCompare([]byte(p), wantPw) == 1
		if !ok || !userOK || !pwOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="opencode"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}

// runProbe asks target until it answers 200: 0 then, 1 once timeout has passed.
func runProbe(target, dir string, timeout time.Duration) int {
	end := time.Now().Add(timeout)
	client := &http.Client{Timeout: 30 * time.Second}
	last := "no answer"
	for {
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, "islet-session-front: bad -probe URL:", err)
			return 2
		}
		if dir != "" {
			req.Header.Set("x-opencode-directory", dir)
		}
		res, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return 0
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(end) {
			fmt.Fprintf(os.Stderr, "islet-session-front: %s did not answer 200 within %s (last: %s)\n", target, timeout, last)
			return 1
		}
		time.Sleep(time.Second)
	}
}
