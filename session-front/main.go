// islet-session-front: the authenticating front of an agent session restored
// from a session template (docs/sessions.md, ADR 0011).
//
// The template's OpenCode was started once, before any session existed, so
// its password (read from OPENCODE_SERVER_PASSWORD when the process starts)
// and its working directory cannot be the session's. It listens on loopback
// only, without a password; this front listens on the port the session's
// forward reaches (4096), refuses every request without HTTP basic auth
// "opencode:<session password>", names the session's directory
// (x-opencode-directory, which OpenCode reads per request) where the client
// did not name one, and proxies to OpenCode, streams and upgrades included.
//
// The front too starts in the template (a Go start costs seconds under TCG),
// before its session exists: it answers 503 to everything until -config holds
// the session's password and directory (written by islet after the restore,
// polled every -poll), then serves that session, and only that one, for good.
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
	config := flag.String("config", "", "file islet writes after the restore: the session's password, then its directory, one a line")
	poll := flag.Duration("poll", 100*time.Millisecond, "how often to look for -config until it is there")
	user := flag.String("user", "opencode", "basic-auth user name, as OpenCode's own (OPENCODE_SERVER_USERNAME default)")
	probe := flag.String("probe", "", "ask this URL until it answers 200, then exit 0 (exit 1 when -timeout passes)")
	header := flag.String("probe-directory", "", "with -probe: the x-opencode-directory header to send")
	timeout := flag.Duration("timeout", 60*time.Second, "with -probe: how long to keep asking")
	flag.Parse()

	if *probe != "" {
		os.Exit(runProbe(*probe, *header, *timeout))
	}
	if *config == "" {
		fail("-config is required")
	}
	up, err := url.Parse(*upstream)
	if err != nil || up.Scheme != "http" || up.Host == "" {
		fail(fmt.Sprintf("bad -upstream %q", *upstream))
	}
	g := newGate(up, *user)
	go g.watch(*config, *poll, nil)
	srv := &http.Server{
		Addr:              *listen,
		Handler:           g,
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
