package proto

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

func mustEncode(t testing.TB, f Frame) []byte {
	t.Helper()
	b, err := AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: TypeHello, RequestID: 1, Payload: []byte(`{"protocol":1}`)},
		{Type: TypeData, Flags: StreamStdout | FlagEOF, RequestID: 0xffffffff},
		{Type: TypeData, Flags: StreamStderr, RequestID: 2, Payload: bytes.Repeat([]byte{0xff}, MaxPayload)},
		{Type: Type(200), RequestID: 3, Payload: []byte("x")},
	}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, mustEncode(t, f)...)
	}
	// A reader that returns one byte at a time exercises every partial read.
	r := NewReader(&oneByteReader{r: bytes.NewReader(stream)})
	for i, want := range frames {
		got, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.Flags != want.Flags || got.RequestID != want.RequestID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v", i, got.Type)
		}
	}
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestTruncated(t *testing.T) {
	full := mustEncode(t, Frame{Type: TypeOK, RequestID: 9, Payload: []byte(`{"a":1}`)})
	for n := 1; n < len(full); n++ {
		_, err := NewReader(bytes.NewReader(full[:n])).ReadFrame()
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("cut at %d: %v, want io.ErrUnexpectedEOF", n, err)
		}
	}
}

func violation(t *testing.T, b []byte, kind ViolationKind) {
	t.Helper()
	_, err := NewReader(bytes.NewReader(b)).ReadFrame()
	var v *ViolationError
	if !errors.As(err, &v) || v.Kind != kind {
		t.Fatalf("got %v, want violation kind %d", err, kind)
	}
}

func TestOversize(t *testing.T) {
	var h [HeaderSize]byte
	PutHeader(h[:], Header{Version: Version, Type: TypeData, Length: MaxPayload + 1})
	// No payload follows: the reader must reject the header without waiting
	// for (or allocating) the payload.
	violation(t, h[:], TooLarge)
	PutHeader(h[:], Header{Version: Version, Type: TypeData, Length: 0xffffffff})
	violation(t, h[:], TooLarge)
	if _, err := AppendFrame(nil, Frame{Payload: make([]byte, MaxPayload+1)}); err == nil {
		t.Fatal("AppendFrame accepted an oversize payload")
	}
}

func TestBadMagic(t *testing.T) {
	b := mustEncode(t, Frame{Type: TypeHello, RequestID: 1})
	b[0] = 'X'
	violation(t, b, BadMagic)
}

func TestBadVersion(t *testing.T) {
	b := mustEncode(t, Frame{Type: TypeHello, RequestID: 1})
	for _, v := range []byte{0, 2, 255} {
		b[4] = v
		violation(t, b, BadVersion)
	}
}

func TestGarbage(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		b := make([]byte, rng.Intn(100))
		rng.Read(b)
		r := NewReader(bytes.NewReader(b))
		for j := 0; j < 10; j++ {
			if _, err := r.ReadFrame(); err != nil {
				break
			}
		}
	}
}

func TestParseHeaderShort(t *testing.T) {
	if _, err := ParseHeader(make([]byte, 15)); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestDecodeJSON(t *testing.T) {
	var e Exec
	for _, bad := range []string{"", "null", "[]", "1", `"x"`, "{", `{"argv":1}`, `{} x`} {
		if err := DecodeJSON([]byte(bad), &e); err == nil {
			t.Errorf("DecodeJSON(%q) succeeded", bad)
		}
	}
	if err := DecodeJSON([]byte(` {"argv":["a"],"future":true}`), &e); err != nil || e.Argv[0] != "a" {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestExecValidate(t *testing.T) {
	l := DefaultLimits()
	sh := "true"
	ok := []Exec{{Argv: []string{"ls"}}, {Shell: &sh}, {Argv: []string{}, Shell: &sh, Cwd: "/tmp"}}
	for i, e := range ok {
		if err := e.Validate(l); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	big := make([]string, l.MaxArgv+1)
	for i := range big {
		big[i] = "x"
	}
	bad := []Exec{
		{},
		{Argv: []string{"ls"}, Shell: &sh},
		{Argv: []string{""}},
		{Argv: []string{"a\x00b"}},
		{Argv: big},
		{Argv: []string{string(make([]byte, l.MaxCommandBytes+1))}},
		{Argv: []string{"ls"}, Env: map[string]string{"A=B": "x"}},
		{Argv: []string{"ls"}, Cwd: "relative"},
		{Argv: []string{"ls"}, TimeoutMs: -1},
		{Argv: []string{"ls"}, MaxOutputBytes: -1},
	}
	for i, e := range bad {
		if err := e.Validate(l); err == nil {
			t.Errorf("bad[%d] accepted", i)
		}
	}
	e := Exec{MaxOutputBytes: 1 << 40}
	if got := e.OutputCap(l); got != l.MaxOutputBytes {
		t.Errorf("cap %d", got)
	}
}

func TestMarshalJSONDeterministic(t *testing.T) {
	b, err := MarshalJSON(ErrorReply{Code: CodeNotFound, Message: "<a&b>"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"code":"NOT_FOUND","message":"<a&b>"}` {
		t.Fatalf("got %s", b)
	}
}
