package proto

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Code is an ERROR frame's code.
type Code string

const (
	CodeInvalidArgument  Code = "INVALID_ARGUMENT"
	CodeNotFound         Code = "NOT_FOUND"
	CodePermissionDenied Code = "PERMISSION_DENIED"
	CodeFileTooLarge     Code = "FILE_TOO_LARGE"
	CodeIsDirectory      Code = "IS_DIRECTORY"
	CodeUnknownType      Code = "UNKNOWN_TYPE"
	CodeProtocolMismatch Code = "PROTOCOL_MISMATCH"
	CodeBusy             Code = "BUSY"
	CodeIOError          Code = "IO_ERROR"
	CodeInternal         Code = "INTERNAL"
)

// Error is an error that carries the ERROR code to reply with.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Msg }

// Errorf builds an *Error.
func Errorf(code Code, format string, args ...interface{}) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code to report for err: its own if it is an *Error,
// else one derived from the errno it wraps, else INTERNAL.
func CodeOf(err error) Code {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return CodeForErrno(err, CodeInternal)
}

// CodeForErrno maps a system error to a code, fallback if it is not one of
// the well-known errnos.
func CodeForErrno(err error, fallback Code) Code {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrNotExist):
		return CodeNotFound
	case errors.Is(err, os.ErrPermission):
		return CodePermissionDenied
	case errors.As(err, &errno):
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
			return CodeNotFound
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			return CodePermissionDenied
		case syscall.EISDIR:
			return CodeIsDirectory
		case syscall.ENAMETOOLONG, syscall.EINVAL, syscall.ELOOP:
			return CodeInvalidArgument
		case syscall.EFBIG:
			return CodeFileTooLarge
		}
		return CodeIOError
	}
	return fallback
}
