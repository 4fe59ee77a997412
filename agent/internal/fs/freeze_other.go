//go:build !linux

package fs

import "errors"

var errNoFreeze = errors.New("filesystem freeze needs Linux")

// Freeze is Linux-only.
func Freeze(string) error { return errNoFreeze }

// Thaw is Linux-only.
func Thaw(string) error { return errNoFreeze }
