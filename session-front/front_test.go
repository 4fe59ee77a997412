package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sessionDir = "/home/agent/workspaces/ses-aaaa"

// upstream echoes what the front forwarded: the directory header and whether a password leaked through.
func upstream(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/event" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("data: one\n\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done() // a stream that lasts: only flushing gets "one" to the client
			return
		}
		w.Write([]byte("dir=" + r.Header.Get("x-opencode-directory") + " q=" + r.URL.Query().Get("directory") + " auth=" + r.Header.Get("Authorization")))
	}))
}

func front(t *testing.T) *httptest.Server {
	up := upstream(t)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	s := httptest.NewServer(newFront(u, sessionDir, "opencode", "ses-aaaa"))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, s *httptest.Server, path, user, pw string, hdr map[string]string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b := new(strings.Builder)
	_, _ = bufio.NewReader(res.Body).WriteTo(b)
	return res.StatusCode, b.String()
}

func TestRefusesWithoutTheSessionPassword(t *testing.T) {
	s := front(t)
	for _, c := range []struct{ user, pw string }{{"", ""}, {"opencode", "ses-bbbb"}, {"opencode", "ses-aaa"}, {"opencode", "ses-aaaaa"}, {"other", "ses-aaaa"}} {
		code, body := get(t, s, "/global/health", c.user, c.pw, nil)
		if code != http.StatusUnauthorized || strings.Contains(body, "dir=") {
			t.Errorf("%q:%q: got %d %q, want 401 and nothing from upstream", c.user, c.pw, code, body)
		}
	}
}

func TestTheSessionDirectoryIsTheDefault(t *testing.T) {
	s := front(t)
	code, body := get(t, s, "/path", "opencode", "ses-aaaa", nil)
	if code != 200 || !strings.HasPrefix(body, "dir="+sessionDir+" ") {
		t.Fatalf("got %d %q", code, body)
	}
	if !strings.HasSuffix(body, "auth=") {
		t.Errorf("the password went upstream: %q", body)
	}
	// A client that names its directory keeps it, by header or by query.
	if _, body = get(t, s, "/path", "opencode", "ses-aaaa", map[string]string{"x-opencode-directory": "/tmp/x"}); !strings.HasPrefix(body, "dir=/tmp/x ") {
		t.Errorf("header: %q", body)
	}
	if _, body = get(t, s, "/path?directory=/tmp/y", "opencode", "ses-aaaa", nil); !strings.Contains(body, "q=/tmp/y") {
		t.Errorf("query: %q", body)
	}
}

func TestEventStreamsAreFlushed(t *testing.T) {
	s := front(t)
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/event", nil)
	req.SetBasicAuth("opencode", "ses-aaaa")
	client := &http.Client{Timeout: 5 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestConfigFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "session")
	os.WriteFile(f, []byte("ses-cccc\n/home/agent/workspaces/ses-cccc\n"), 0o600)
	if s, err := readConfig(f); err != nil || s.password != "ses-cccc" || s.dir != "/home/agent/workspaces/ses-cccc" {
		t.Errorf("got %+v, %v", s, err)
	}
	for _, bad := range []string{"", "ses-cccc\n", "ses-cccc\n/home/agent/workspaces/ses-cccc", "\n/tmp\n", "ses-cccc\nrelative\n",
		"ses-cccc\n/tmp\nmore\n", strings.Repeat("x", maxConfigFile+10) + "\n/tmp\n"} {
		os.WriteFile(f, []byte(bad), 0o600)
		if s, err := readConfig(f); err == nil {
			t.Errorf("%.40q was accepted: %+v", bad, s)
		}
	}
}

// The front starts before its session exists (in the template): closed to everyone, the empty password included, until
// its config is written; then open to that session's password only, and deaf to any later config.
func TestClosedUntilConfigured(t *testing.T) {
	up := upstream(t)
	defer up.Close()
	u, _ := url.Parse(up.URL)
	g := newGate(u, "opencode")
	s := httptest.NewServer(g)
	defer s.Close()
	f := filepath.Join(t.TempDir(), "session")
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() { g.watch(f, 5*time.Millisecond, done); close(watched) }()
	defer close(done)
	for _, c := range []struct{ user, pw string }{{"", ""}, {"opencode", ""}, {"opencode", "ses-aaaa"}} {
		if code, body := get(t, s, "/global/health", c.user, c.pw, nil); code != http.StatusServiceUnavailable || strings.Contains(body, "dir=") {
			t.Errorf("unconfigured, %q:%q: got %d %q, want 503 and nothing from upstream", c.user, c.pw, code, body)
		}
	}
	os.WriteFile(f, []byte("ses-aaaa\n"), 0o600) // cut short: still closed
	time.Sleep(30 * time.Millisecond)
	if code, _ := get(t, s, "/global/health", "opencode", "ses-aaaa", nil); code != http.StatusServiceUnavailable {
		t.Errorf("half a config opened the front: %d", code)
	}
	os.WriteFile(f, []byte("ses-aaaa\n"+sessionDir+"\n"), 0o600)
	select {
	case <-watched:
	case <-time.After(5 * time.Second):
		t.Fatal("the config was never read")
	}
	if code, body := get(t, s, "/path", "opencode", "ses-aaaa", nil); code != 200 || !strings.HasPrefix(body, "dir="+sessionDir+" ") {
		t.Errorf("configured: got %d %q", code, body)
	}
	for _, pw := range []string{"", "ses-bbbb"} {
		if code, _ := get(t, s, "/global/health", "opencode", pw, nil); code != http.StatusUnauthorized {
			t.Errorf("configured, password %q: got %d, want 401", pw, code)
		}
	}
	if g.configure(session{password: "ses-bbbb", dir: "/tmp"}) {
		t.Error("a second session was configured")
	}
	if code, _ := get(t, s, "/global/health", "opencode", "ses-bbbb", nil); code != http.StatusUnauthorized {
		t.Errorf("the second session's password: got %d, want 401", code)
	}
}

func TestProbe(t *testing.T) {
	s := front(t)
	if runProbe(s.URL+"/global/health", "", 2*time.Second) != 1 {
		t.Error("a 401 counted as ready")
	}
	up := upstream(t)
	defer up.Close()
	if runProbe(up.URL+"/path", sessionDir, 2*time.Second) != 0 {
		t.Error("a 200 was not ready")
	}
}
