//go:build linux

package transport

import "os"

// Open finds the port called name (or takes an absolute device path) and
// opens it read-write. The *os.File is pollable, so reads park in the
// runtime poller and write deadlines work.
func Open(name string) (Port, error) {
	path, err := FindPort("/sys/class/virtio-ports", "/dev", name)
	if err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}
