//go:build !linux

package initsys

import (
	"errors"
	"io"
	"os"
	"time"

	"islet/agent/internal/exec"
	"islet/agent/internal/logger"
)

var errUnsupported = errors.New("initsys: only supported on Linux")

const (
	InitramfsMarker = "/islet-initramfs"
	AgentPath       = "/usr/local/bin/islet-agent"
)

func IsInitramfs() bool  { return false }
func Console() io.Writer { return os.Stderr }

func Fatal(logf logger.Logf, format string, args ...interface{}) {
	logf("FATAL: "+format, args...)
	for {
		time.Sleep(time.Hour)
	}
}

func Stage1(logf logger.Logf) *os.File                { Fatal(logf, "%v", errUnsupported); return nil }
func SetupPID1(logf logger.Logf)                      { logf("%v", errUnsupported) }
func PowerOffPID1() error                             { return errUnsupported }
func PowerOffService(*exec.Reaper, logger.Logf) error { return errUnsupported }
