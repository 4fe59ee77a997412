package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// maxConnections bounds the proxy processes one VM can hold open at once:
// each connection is a process on the host, and the guest controls how many
// it opens.
const maxConnections = 128

// acquireSlot takes one of n lock files under dir (flock, released by the
// kernel when this process exits, however it exits). false: all are held.
func acquireSlot(dir string, n int) (*os.File, bool) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false
	}
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d", i)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, false
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			return f, true
		}
		f.Close()
	}
	return nil, false
}
