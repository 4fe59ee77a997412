package main

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxPasswordFile bounds what is read from -password-file.
const maxPasswordFile = 4096

func readPassword(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(io.LimitReader(f, maxPasswordFile), maxPasswordFile).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("%s holds no password", file)
	}
	return pw, nil
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
