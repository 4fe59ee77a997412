//go:build !linux

package transport

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Open opens an absolute device path; virtio-serial port names are only
// resolved on Linux.
func Open(name string) (Port, error) {
	if !filepath.IsAbs(name) {
		return nil, fmt.Errorf("virtio-serial port lookup is not supported on %s; pass a device path", runtime.GOOS)
	}
	return os.OpenFile(name, os.O_RDWR, 0)
}
