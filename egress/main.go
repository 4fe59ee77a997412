// islet-egress: the egress proxy of one user-mode workspace connection.
//
// QEMU's user-mode network runs with restrict=on, so the guest can open no
// connection out of its VM except to islet's proxy address, a guestfwd whose
// cmd: starts this program once per connection, the guest's TCP stream on
// stdin/stdout (a socket). It speaks HTTP CONNECT and plain-HTTP proxying,
// reads the workspace's policy file (argv[1]) afresh, resolves names itself,
// and refuses loopback, link-local, the host's own addresses, private ranges
// (unless allowed) and whatever the policy does not allow.
//
// stderr is the same socket as stdout (slirp hands one socket to all three),
// so this program never writes diagnostics: a refusal is an HTTP answer.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		os.Exit(2)
	}
	file := os.Args[1]
	c, err := net.FileConn(os.Stdin)
	if err != nil {
		os.Exit(1)
	}
	// Slots live beside the policy file, in the VM's own run directory.
	slot, ok := acquireSlot(filepath.Join(filepath.Dir(file), "egress-slots"), maxConnections)
	if !ok {
		reply(c, http.StatusServiceUnavailable, fmt.Sprintf("this workspace already has %d proxy connections open", maxConnections))
		c.Close()
		return
	}
	defer slot.Close()
	e := &env{
		policy:    func() (*Policy, error) { return loadPolicy(file) },
		hostAddrs: hostAddresses,
		lookup:    lookupIPs,
		dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
	}
	e.serve(c)
}
