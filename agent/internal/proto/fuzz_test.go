package proto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func FuzzReadHeader(f *testing.F) {
	good := make([]byte, HeaderSize)
	PutHeader(good, Header{Version: Version, Type: TypeHello, RequestID: 1, Length: 14})
	f.Add(good)
	f.Add([]byte("ISLT"))
	f.Add(bytes.Repeat([]byte{0xff}, HeaderSize))
	f.Add(append([]byte("ISLT\x01\x06\x80\x01"), 0, 0, 0, 1, 0, 0x10, 0, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Version != Version || h.Length > MaxPayload {
			t.Fatalf("accepted bad header %+v", h)
		}
		var out [HeaderSize]byte
		PutHeader(out[:], h)
		if !bytes.Equal(out[:], b[:HeaderSize]) {
			t.Fatalf("re-encode mismatch: %x vs %x", out, b[:HeaderSize])
		}
	})
}

func FuzzReader(f *testing.F) {
	one, _ := AppendFrame(nil, Frame{Type: TypeExec, RequestID: 7, Payload: []byte(`{"argv":["ls"]}`)})
	two, _ := AppendFrame(one, Frame{Type: TypeData, Flags: FlagEOF, RequestID: 7})
	f.Add(one)
	f.Add(two)
	f.Add(two[:20])
	po, _ := AppendFrame(nil, Frame{Type: TypeProcOutput, RequestID: 9, Payload: []byte(`{"id":3,"offset":10,"waitMs":100}`)})
	f.Add(append(po, two...))
	f.Add([]byte("garbage garbage garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		consumed := 0
		for {
			fr, err := r.ReadFrame()
			if err != nil {
				var v *ViolationError
				if err != io.EOF && err != io.ErrUnexpectedEOF && !errors.As(err, &v) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			enc, err := AppendFrame(nil, fr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, b[consumed:consumed+len(enc)]) {
				t.Fatalf("frame does not re-encode to its input")
			}
			consumed += len(enc)
		}
	})
}
