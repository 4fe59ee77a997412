package main

import (
	"os"
	"strconv"
	"syscall"

	"islet/agent/internal/transport"
)

// portOpener opens the named port, except that the first call takes the
// descriptor stage 1 handed over in ISLET_PORT_FD (a restore from a pre-root
// template): that port is already open, and opening it again would fail
// (one opener per port) or, after a close, drop a host request in flight.
func portOpener(name string) func() (transport.Port, error) {
	fd := -1
	if v, err := strconv.Atoi(os.Getenv("ISLET_PORT_FD")); err == nil && v > 2 {
		fd = v
	}
	os.Unsetenv("ISLET_PORT_FD") // not for the processes the agent starts
	return func() (transport.Port, error) {
		if fd < 0 {
			return transport.Open(name)
		}
		f := fd
		fd = -1
		syscall.CloseOnExec(f)
		// Non-blocking, so os.NewFile makes it pollable (write deadlines work, as on an opened port).
		if err := syscall.SetNonblock(f, true); err != nil {
			return transport.Open(name)
		}
		return os.NewFile(uintptr(f), "inherited-port"), nil
	}
}
