package main

import (
	"os"

	"islet/agent/internal/transport"
)

// portOpener opens the named port, except that the first call takes the
// port stage 1 was serving (a restore from a pre-root template switched root
// in this process): it is already open and connected to the host, and
// opening it again would fail (one opener per port).
func portOpener(name string, handed *os.File) func() (transport.Port, error) {
	return func() (transport.Port, error) {
		if handed != nil {
			f := handed
			handed = nil
			return f, nil
		}
		return transport.Open(name)
	}
}
