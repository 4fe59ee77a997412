package info

import (
	"syscall"
	"time"
)

// SetSystemTime sets the wall clock (needs CAP_SYS_TIME).
func SetSystemTime(t time.Time) error {
	tv := syscall.NsecToTimeval(t.UnixNano())
	return syscall.Settimeofday(&tv)
}
