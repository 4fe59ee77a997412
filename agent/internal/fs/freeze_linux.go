//go:build linux

package fs

import (
	"errors"
	"os"
	"syscall"
)

// FIFREEZE and FITHAW from linux/fs.h (_IOWR('X', 119/120, int)).
const (
	fiFreeze = 0xC0045877
	fiThaw   = 0xC0045878
)

// Freeze freezes the filesystem mounted at path: dirty data and the
// journal are written out, and writes wait until Thaw. The caller must
// make sure Thaw follows (the server arms a deadline).
func Freeze(path string) error { return ioctlAt(path, fiFreeze) }

// Thaw thaws the filesystem mounted at path; one that is not frozen
// (EINVAL) is not an error.
func Thaw(path string) error {
	if err := ioctlAt(path, fiThaw); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

func ioctlAt(path string, req uintptr) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, 0); e != 0 {
		return e
	}
	return nil
}
