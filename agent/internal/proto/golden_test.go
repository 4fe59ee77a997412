package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite agent/testdata/frames from the table in golden_test.go")

const goldenDir = "../../testdata/frames"

// goldenEntry is one line of manifest.json. TypeScript reads the same file:
// payload is the JSON value (null for raw frames), payloadHex the raw bytes
// (only for raw frames). name and direction are for humans.
type goldenEntry struct {
	Name       string          `json:"name"`
	Direction  string          `json:"direction"`
	File       string          `json:"file"`
	Type       Type            `json:"type"`
	Flags      uint16          `json:"flags"`
	RequestID  uint32          `json:"requestId"`
	Payload    json.RawMessage `json:"payload"`
	PayloadHex *string         `json:"payloadHex,omitempty"`
}

type goldenCase struct {
	name, dir string
	typ       Type
	flags     uint16
	id        uint32
	json      interface{} // JSON payload, or nil with raw
	raw       []byte
}

func goldenCases() []goldenCase {
	zero, mode := 0, uint32(0o644)
	maxBytes := int64(1048576)
	return []goldenCase{
		{"hello_request", "host", TypeHello, 0, 1, Hello{Protocol: 1, Client: "islet/0.1.0"}, nil},
		{"hello_reply", "guest", TypeHello, 0, 1, HelloReply{Protocol: 1, Agent: "0.1.0",
			Caps:     []string{"exec", "exec.stdin", "exec.signal", "file.read", "file.write", "health", "time.sync", "poweroff"},
			InitMode: "fast", PID: 1, BootMs: 812}, nil},
		{"exec_request", "host", TypeExec, 0, 7, Exec{Argv: []string{"ls", "-l"}, Env: map[string]string{"K": "V"},
			Cwd: "/root", TimeoutMs: 30000, MaxOutputBytes: 1048576}, nil},
		{"exec_started", "guest", TypeExecStarted, 0, 7, ExecStarted{PID: 42}, nil},
		{"data_stdout", "guest", TypeData, StreamStdout, 7, nil, []byte("total 0\n")},
		{"data_stdout_eof", "guest", TypeData, StreamStdout | FlagEOF, 7, nil, []byte{}},
		{"data_stderr_eof", "guest", TypeData, StreamStderr | FlagEOF, 7, nil, []byte("bye\n")},
		{"exec_exited", "guest", TypeExecExited, 0, 7, ExecExited{ExitCode: &zero, DurationMs: 12}, nil},
		{"exec_exited_signal", "guest", TypeExecExited, 0, 8, ExecExited{Signal: strPtr("KILL"), TimedOut: true, Truncated: true, DurationMs: 30001}, nil},
		{"data_stdin_eof", "host", TypeData, StreamStdin | FlagEOF, 9, nil, []byte{0, 1, 2, 0xff}},
		{"signal", "host", TypeSignal, 0, 8, Signal{Signal: "KILL"}, nil},
		{"error", "guest", TypeError, 0, 10, ErrorReply{Code: CodeNotFound, Message: "no such file: /nope"}, nil},
		{"file_write_request", "host", TypeFileWrite, 0, 11, FileWrite{Path: "/root/a.txt", Mode: &mode, CreateParents: true}, nil},
		{"file_write_ok", "guest", TypeOK, 0, 11, FileWriteOK{Bytes: 4}, nil},
		{"file_read_request", "host", TypeFileRead, 0, 12, FileRead{Path: "/etc/hostname", MaxBytes: &maxBytes}, nil},
		{"file_read_ok", "guest", TypeOK, 0, 12, FileReadOK{Size: 6, Mode: 0o644}, nil},
		{"health_request", "host", TypeHealth, 0, 13, Health{}, nil},
		{"health_ok", "guest", TypeOK, 0, 13, HealthOK{Agent: "0.1.0", Protocol: 1, UptimeMs: 1500, TimeUnixMs: 1700000000000,
			MemTotalKb: 250000, MemAvailableKb: 200000, Load1: 0.25}, nil},
		{"time_sync_request", "host", TypeTimeSync, 0, 14, TimeSync{UnixMs: 1700000000000}, nil},
		{"time_sync_ok", "guest", TypeOK, 0, 14, TimeSyncOK{SkewMs: -3}, nil},
		{"poweroff_request", "host", TypePoweroff, 0, 15, Poweroff{}, nil},
		{"ok", "guest", TypeOK, 0, 15, Empty{}, nil},
		{"proc_start_request", "host", TypeProcStart, 0, 16, ProcStart{Shell: strPtr("npm run dev"), Env: map[string]string{"PORT": "3000"},
			Cwd: "/root/app", Stdin: true, RingBytes: 1048576}, nil},
		{"proc_start_ok", "guest", TypeOK, 0, 16, ProcStarted{ID: 3, PID: 120}, nil},
		{"proc_list_request", "host", TypeProcList, 0, 17, ProcList{}, nil},
		{"proc_list_ok", "guest", TypeOK, 0, 17, ProcListOK{Procs: []ProcInfo{{ID: 3, PID: 120, Command: "npm run dev", Running: true,
			StartedUnixMs: 1700000000000, DurationMs: 5000, OutputBytes: 2048, Stdin: true}}}, nil},
		{"proc_output_request", "host", TypeProcOutput, 0, 18, ProcOutput{ProcRef: ProcRef{ID: 3}, Offset: 1024, MaxBytes: 65536, WaitMs: 5000}, nil},
		{"proc_output_data", "guest", TypeData, StreamStderr, 18, nil, []byte("listening\n")},
		{"proc_output_ok", "guest", TypeOK, 0, 18, ProcOutputOK{Start: 1500, Next: 1510, Dropped: 476, Proc: ProcInfo{ID: 3, PID: 120,
			Command: "npm run dev", ExitCode: &zero, StartedUnixMs: 1700000000000, DurationMs: 9000, OutputBytes: 1510, DroppedBytes: 1500}}, nil},
		{"proc_write_request", "host", TypeProcWrite, 0, 19, ProcWrite{ProcRef: ProcRef{ID: 3}, Data: []byte("q\n"), Close: true}, nil},
		{"proc_write_ok", "guest", TypeOK, 0, 19, ProcWriteOK{Bytes: 2}, nil},
		{"proc_signal_request", "host", TypeProcSignal, 0, 20, ProcSignal{ProcRef: ProcRef{ID: 3}, Signal: "TERM"}, nil},
		{"proc_wait_request", "host", TypeProcWait, 0, 21, ProcWait{ProcRef: ProcRef{ID: 3}, TimeoutMs: 30000}, nil},
		{"proc_start_pty_request", "host", TypeProcStart, 0, 22, ProcStart{Argv: []string{"/bin/sh", "-l"}, Pty: &PtySize{Cols: 80, Rows: 24}}, nil},
		{"proc_resize_request", "host", TypeProcResize, 0, 23, ProcResize{ProcRef: ProcRef{ID: 4}, PtySize: PtySize{Cols: 132, Rows: 43}}, nil},
	}
}

func strPtr(s string) *string { return &s }

func (c goldenCase) frame(t *testing.T) (Frame, goldenEntry) {
	t.Helper()
	e := goldenEntry{Name: c.name, Direction: c.dir, File: c.name + ".bin", Type: c.typ, Flags: c.flags, RequestID: c.id}
	f := Frame{Type: c.typ, Flags: c.flags, RequestID: c.id}
	if c.json != nil {
		p, err := MarshalJSON(c.json)
		if err != nil {
			t.Fatal(err)
		}
		f.Payload, e.Payload = p, p
	} else {
		h := hex.EncodeToString(c.raw)
		f.Payload, e.Payload, e.PayloadHex = c.raw, json.RawMessage("null"), &h
	}
	return f, e
}

func TestGoldenFrames(t *testing.T) {
	cases := goldenCases()
	if *update {
		var entries []goldenEntry
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			f, e := c.frame(t)
			if err := os.WriteFile(filepath.Join(goldenDir, e.File), mustEncode(t, f), 0o644); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, e)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(entries); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(goldenDir, "manifest.json"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(filepath.Join(goldenDir, "manifest.json"))
	if err != nil {
		t.Fatalf("%v (run go test ./internal/proto -run Golden -update)", err)
	}
	var manifest []goldenEntry
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest) != len(cases) {
		t.Fatalf("manifest has %d entries, table %d: run with -update", len(manifest), len(cases))
	}
	for i, c := range cases {
		f, want := c.frame(t)
		got := manifest[i]
		// 1. The manifest entry is what the table says.
		var compact bytes.Buffer
		if err := json.Compact(&compact, got.Payload); err != nil {
			t.Fatalf("%s: payload: %v", c.name, err)
		}
		got.Payload = compact.Bytes()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: manifest entry %+v, want %+v", c.name, got, want)
			continue
		}
		// 2. Encoding the entry gives exactly the .bin bytes.
		bin, err := os.ReadFile(filepath.Join(goldenDir, got.File))
		if err != nil {
			t.Fatal(err)
		}
		if enc := mustEncode(t, f); !bytes.Equal(enc, bin) {
			t.Errorf("%s: encoding %x\n.bin       %x", c.name, enc, bin)
			continue
		}
		// 3. Decoding the .bin gives the entry back.
		fr, err := NewReader(bytes.NewReader(bin)).ReadFrame()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if fr.Type != got.Type || fr.Flags != got.Flags || fr.RequestID != got.RequestID {
			t.Errorf("%s: decoded header %v/%d/%d", c.name, fr.Type, fr.Flags, fr.RequestID)
		}
		if got.PayloadHex != nil {
			if hex.EncodeToString(fr.Payload) != *got.PayloadHex {
				t.Errorf("%s: raw payload %x", c.name, fr.Payload)
			}
		} else if !bytes.Equal(fr.Payload, got.Payload) {
			t.Errorf("%s: payload %s, want %s", c.name, fr.Payload, got.Payload)
		}
		// 4. The payload decodes into its Go type and re-encodes identically.
		if c.json != nil {
			v := reflect.New(reflect.TypeOf(c.json))
			if err := DecodeJSON(fr.Payload, v.Interface()); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if re, _ := MarshalJSON(v.Elem().Interface()); !bytes.Equal(re, fr.Payload) {
				t.Errorf("%s: re-encoded %s", c.name, re)
			}
		}
	}
}
