package info

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"islet/agent/internal/clock"
	"islet/agent/internal/proto"
)

type fixedClock struct {
	clock.Real
	t time.Time
}

func (c fixedClock) Now() time.Time { return c.t }

func TestHealth(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "uptime"), []byte("12.34 5.00\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal:  250000 kB\nMemFree: 1 kB\nMemAvailable:   200000 kB\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "loadavg"), []byte("0.25 0.10 0.05 1/80 123\n"), 0o644)
	h, err := Health(dir, fixedClock{t: time.UnixMilli(1700000000000)})
	if err != nil {
		t.Fatal(err)
	}
	want := proto.HealthOK{Agent: AgentVersion, Protocol: 1, UptimeMs: 12340, TimeUnixMs: 1700000000000,
		MemTotalKb: 250000, MemAvailableKb: 200000, Load1: 0.25}
	if h != want {
		t.Fatalf("got %+v", h)
	}
	if _, err := Health("/proc", clock.Real{}); err != nil {
		t.Fatalf("real /proc: %v", err)
	}
}

func TestTimeSync(t *testing.T) {
	var set time.Time
	ok, err := TimeSync(proto.TimeSync{UnixMs: 1000}, fixedClock{t: time.UnixMilli(1500)}, func(t time.Time) error { set = t; return nil })
	if err != nil || ok.SkewMs != 500 || set.UnixMilli() != 1000 {
		t.Fatalf("%+v %v %v", ok, err, set)
	}
}

func TestCmdline(t *testing.T) {
	m := Cmdline("console=ttyS0 quiet islet.root=/dev/vdb islet.init=full x=1 x=2\n")
	if m["islet.root"] != "/dev/vdb" || m["islet.init"] != "full" || m["x"] != "2" {
		t.Fatalf("%v", m)
	}
	if _, ok := m["quiet"]; !ok {
		t.Fatal("bare word")
	}
}
