package transport

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFindPort(t *testing.T) {
	sys := t.TempDir()
	for dir, name := range map[string]string{"vport0p1": "org.qemu.guest_agent.0\n", "vport0p2": "org.islet.agent.0\n"} {
		os.MkdirAll(filepath.Join(sys, dir), 0o755)
		os.WriteFile(filepath.Join(sys, dir, "name"), []byte(name), 0o644)
	}
	got, err := FindPort(sys, "/dev", DefaultPortName)
	if err != nil || got != "/dev/vport0p2" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := FindPort(sys, "/dev", "nope"); err == nil {
		t.Fatal("found a missing port")
	}
	if got, _ := FindPort(sys, "/dev", "/dev/vport9p9"); got != "/dev/vport9p9" {
		t.Fatal(got)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, b.Next()/time.Millisecond)
	}
	if want := []time.Duration{20, 40, 80, 160, 200, 200}; !equal(got, want) {
		t.Fatalf("%v", got)
	}
	b.Reset()
	if b.Next() != 20*time.Millisecond {
		t.Fatal("reset")
	}
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// fakePort returns scripted reads: nil entries are "no client" (0, EOF).
type fakePort struct {
	reads  [][]byte
	closed bool
}

func (p *fakePort) Read(b []byte) (int, error) {
	if len(p.reads) == 0 {
		return 0, io.EOF
	}
	r := p.reads[0]
	p.reads = p.reads[1:]
	if r == nil {
		return 0, io.EOF
	}
	return copy(b, r), nil
}
func (p *fakePort) Write(b []byte) (int, error) { return len(b), nil }
func (p *fakePort) Close() error                { p.closed = true; return nil }

func TestLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sleeps []time.Duration
	opens := 0
	port := &fakePort{reads: [][]byte{nil, nil, nil, []byte("x"), nil, nil}}
	sessions := 0
	l := &Loop{
		Open: func() (Port, error) {
			opens++
			if opens == 1 {
				return nil, errors.New("not yet")
			}
			return port, nil
		},
		Serve: func(c io.ReadWriter) error {
			sessions++
			buf := make([]byte, 10)
			for {
				if _, err := c.Read(buf); err != nil {
					return err
				}
			}
		},
		Sleep: func(d time.Duration) {
			sleeps = append(sleeps, d/time.Millisecond)
			if len(sleeps) == 7 {
				cancel()
			}
		},
		Logf: t.Logf,
	}
	l.Run(ctx)
	// open fails (20), three empty sessions (40 80 160), one real session
	// resets (20), then empty again (40 80).
	if want := []time.Duration{20, 40, 80, 160, 20, 40, 80}; !equal(sleeps, want) {
		t.Fatalf("sleeps %v", sleeps)
	}
	if opens != 2 || !port.closed {
		t.Fatalf("opens %d closed %v", opens, port.closed)
	}
}

func TestLoopReopensOnError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opens := 0
	l := &Loop{
		Open:  func() (Port, error) { opens++; return &fakePort{}, nil },
		Serve: func(io.ReadWriter) error { return errors.New("EIO") },
		Sleep: func(time.Duration) {
			if opens == 3 {
				cancel()
			}
		},
		Logf: t.Logf,
	}
	l.Run(ctx)
	if opens != 3 {
		t.Fatalf("opens %d", opens)
	}
}
