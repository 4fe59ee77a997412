// islet-session-front: the authenticating front of an agent session restored
// from a session template (docs/sessions.md, ADR 0011).
//
// The template's OpenCode was started once, before any session existed, so
// its password (read from OPENCODE_SERVER_PASSWORD when the process starts)
// and its working directory cannot be the session's. It listens on loopback
// only, without a password; this front, started at session create, listens on
// the port the session's forward reaches (4096), refuses every request without
// HTTP basic auth "opencode:<session password>", names the session's directory
// (x-opencode-directory, which OpenCode reads per request) where the client
// did not name one, and proxies to OpenCode, streams and upgrades included.
//
// -probe URL instead asks URL until it answers 200 (the template build's
// readiness check inside the guest, which may have no curl or wget).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "0.0.0.0:4096", "address the session's forward reaches")
	upstream := flag.String("upstream", "http://127.0.0.1:4097", "OpenCode's loopback-only server")
	dir := flag.String("directory", "", "the session's checkout: OpenCode's directory for requests that name none")
	pwFile := flag.String("password-file", "", "file holding the session's password (its first line)")
	user := flag.String("user", "opencode", "basic-auth user name, as OpenCode's own (OPENCODE_SERVER_USERNAME default)")
	probe := flag.String("probe", "", "ask this URL until it answers 200, then exit 0 (exit 1 when -timeout passes)")
	header := flag.String("probe-directory", "", "with -probe: the x-opencode-directory header to send")
	timeout := flag.Duration("timeout", 60*time.Second, "with -probe: how long to keep asking")
	flag.Parse()

	if *probe != "" {
		os.Exit(runProbe(*probe, *header, *timeout))
	}
	if *dir == "" || *pwFile == "" {
		fail("-directory and -password-file are required")
	}
	pw, err := readPassword(*pwFile)
	if err != nil {
		fail(err.Error())
	}
	up, err := url.Parse(*upstream)
	if err != nil || up.Scheme != "http" || up.Host == "" {
		fail(fmt.Sprintf("bad -upstream %q", *upstream))
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           newFront(up, *dir, *user, pw),
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// No write timeout: OpenCode's /event is a stream that lasts as long as its client.
	}
	if err := srv.ListenAndServe(); err != nil {
		fail(err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "islet-session-front:", msg)
	os.Exit(2)
}
