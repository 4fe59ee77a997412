//go:build !linux

package exec

import (
	"errors"
	"os"
)

// Winsize is a terminal size in character cells.
type Winsize struct {
	Cols, Rows uint16
}

// SetWinsize is Linux only.
func SetWinsize(*os.File, Winsize) error { return errors.New("terminals need Linux") }

func startPTY(*Reaper, *Process, string, string) error { return errors.New("terminals need Linux") }
