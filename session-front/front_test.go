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

func TestPasswordFile(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "pw")
	os.WriteFile(f, []byte("ses-cccc\nignored\n"), 0o600)
	if pw, err := readPassword(f); err != nil || pw != "ses-cccc" {
		t.Errorf("got %q, %v", pw, err)
	}
	os.WriteFile(f, []byte("\n"), 0o600)
	if _, err := readPassword(f); err == nil {
		t.Error("an empty password was accepted")
	}
	os.WriteFile(f, []byte(strings.Repeat("x", maxPasswordFile+10)), 0o600)
	if pw, _ := readPassword(f); len(pw) > maxPasswordFile {
		t.Errorf("read %d bytes", len(pw))
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
