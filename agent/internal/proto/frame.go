// Package proto is the host <-> agent wire format (docs/protocol.md): the
// 16-byte big-endian frame header, frame types and flags, JSON payloads and
// their limits. Standard library only; fuzzed.
package proto

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	Magic      uint32 = 0x49534C54 // "ISLT"
	Version    uint8  = 1
	HeaderSize        = 16
	MaxPayload        = 1 << 20
	// DataChunk is the largest DATA payload the agent sends: a whole frame
	// is then exactly 64 KiB, two of the 32 KiB writes the guest's
	// virtio-console driver takes at most per call, where a 64 KiB payload
	// left a 16-byte third write (its own virtqueue buffer and host wakeup)
	// behind every frame.
	DataChunk = 64<<10 - HeaderSize
)

// Type is a frame type.
type Type uint8

const (
	TypeHello       Type = 1
	TypeError       Type = 2
	TypeOK          Type = 3
	TypeExec        Type = 4
	TypeExecStarted Type = 5
	TypeData        Type = 6
	TypeExecExited  Type = 7
	TypeSignal      Type = 8
	TypeFileWrite   Type = 9
	TypeFileRead    Type = 10
	TypeHealth      Type = 11
	TypeTimeSync    Type = 12
	TypePoweroff    Type = 13
	// Background processes (caps "proc").
	TypeProcStart  Type = 14
	TypeProcList   Type = 15
	TypeProcOutput Type = 16
	TypeProcWrite  Type = 17
	TypeProcSignal Type = 18
	TypeProcWait   Type = 19
	TypeProcResize Type = 20
	// Re-addressing a restored guest (caps "net.config"). Numbered apart
	// from the sequence above so that types added there never collide.
	TypeNetConfig Type = 30
	// Freezing a filesystem for a consistent live snapshot (caps "fs.freeze").
	TypeFsFreeze Type = 31
	TypeFsThaw   Type = 32
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeError:
		return "ERROR"
	case TypeOK:
		return "OK"
	case TypeExec:
		return "EXEC"
	case TypeExecStarted:
		return "EXEC_STARTED"
	case TypeData:
		return "DATA"
	case TypeExecExited:
		return "EXEC_EXITED"
	case TypeSignal:
		return "SIGNAL"
	case TypeFileWrite:
		return "FILE_WRITE"
	case TypeFileRead:
		return "FILE_READ"
	case TypeHealth:
		return "HEALTH"
	case TypeTimeSync:
		return "TIME_SYNC"
	case TypePoweroff:
		return "POWEROFF"
	case TypeProcStart:
		return "PROC_START"
	case TypeProcList:
		return "PROC_LIST"
	case TypeProcOutput:
		return "PROC_OUTPUT"
	case TypeProcWrite:
		return "PROC_WRITE"
	case TypeProcSignal:
		return "PROC_SIGNAL"
	case TypeProcWait:
		return "PROC_WAIT"
	case TypeProcResize:
		return "PROC_RESIZE"
	case TypeNetConfig:
		return "NET_CONFIG"
	case TypeFsFreeze:
		return "FS_FREEZE"
	case TypeFsThaw:
		return "FS_THAW"
	}
	return fmt.Sprintf("TYPE_%d", uint8(t))
}

// DATA flags.
const (
	StreamMask uint16 = 0x0003
	FlagEOF    uint16 = 0x8000
	// StreamStdin is stdin for EXEC, file content for FILE_WRITE/FILE_READ.
	StreamStdin  uint16 = 0
	StreamStdout uint16 = 1
	StreamStderr uint16 = 2
	// DataFlagsMask is every bit a DATA frame may set.
	DataFlagsMask = StreamMask | FlagEOF
)

// Header is a decoded frame header.
type Header struct {
	Version   uint8
	Type      Type
	Flags     uint16
	RequestID uint32
	Length    uint32
}

// Frame is one whole frame.
type Frame struct {
	Type      Type
	Flags     uint16
	RequestID uint32
	Payload   []byte
}

// Stream returns the DATA stream number.
func (f Frame) Stream() uint16 { return f.Flags & StreamMask }

// EOF reports whether a DATA frame ends its stream.
func (f Frame) EOF() bool { return f.Flags&FlagEOF != 0 }

// ViolationKind says which header rule a peer broke.
type ViolationKind int

const (
	BadMagic ViolationKind = iota + 1
	BadVersion
	TooLarge
)

// ViolationError is a protocol violation: the connection must be dropped.
type ViolationError struct {
	Kind ViolationKind
	Msg  string
}

func (e *ViolationError) Error() string { return "protocol violation: " + e.Msg }

// PutHeader writes h into b[:HeaderSize] with the magic.
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	binary.BigEndian.PutUint32(b[0:4], Magic)
	b[4] = h.Version
	b[5] = uint8(h.Type)
	binary.BigEndian.PutUint16(b[6:8], h.Flags)
	binary.BigEndian.PutUint32(b[8:12], h.RequestID)
	binary.BigEndian.PutUint32(b[12:16], h.Length)
}

// ParseHeader decodes and checks a header: magic, version and length bound.
// b must hold at least HeaderSize bytes.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("short header: %d bytes", len(b))
	}
	if m := binary.BigEndian.Uint32(b[0:4]); m != Magic {
		return Header{}, &ViolationError{BadMagic, fmt.Sprintf("bad magic 0x%08x", m)}
	}
	h := Header{
		Version:   b[4],
		Type:      Type(b[5]),
		Flags:     binary.BigEndian.Uint16(b[6:8]),
		RequestID: binary.BigEndian.Uint32(b[8:12]),
		Length:    binary.BigEndian.Uint32(b[12:16]),
	}
	if h.Version != Version {
		return Header{}, &ViolationError{BadVersion, fmt.Sprintf("frame version %d, want %d", h.Version, Version)}
	}
	if h.Length > MaxPayload {
		return Header{}, &ViolationError{TooLarge, fmt.Sprintf("payload %d > %d", h.Length, MaxPayload)}
	}
	return h, nil
}

// AppendFrame appends the encoding of f to dst.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxPayload {
		return dst, fmt.Errorf("payload %d > %d", len(f.Payload), MaxPayload)
	}
	var h [HeaderSize]byte
	PutHeader(h[:], Header{Version: Version, Type: f.Type, Flags: f.Flags, RequestID: f.RequestID, Length: uint32(len(f.Payload))})
	dst = append(dst, h[:]...)
	return append(dst, f.Payload...), nil
}

// Reader decodes frames from a byte stream. After it returns an error the
// stream position is unknown: make a new Reader for the next connection.
type Reader struct {
	br  *bufio.Reader
	hdr [HeaderSize]byte
}

// NewReader returns a Reader with its own read buffer.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10)}
}

// ReadFrame returns the next frame. It returns io.EOF at a clean frame
// boundary, io.ErrUnexpectedEOF inside a frame, and *ViolationError for a bad
// header (before reading or allocating its payload). The payload is freshly
// allocated and owned by the caller.
func (r *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	h, err := ParseHeader(r.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Type: h.Type, Flags: h.Flags, RequestID: h.RequestID}
	if h.Length > 0 {
		f.Payload = make([]byte, h.Length)
		if _, err := io.ReadFull(r.br, f.Payload); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
	}
	return f, nil
}
