package logger

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"islet/agent/internal/clock"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time                              { return c.now }
func (c *fakeClock) Sleep(d time.Duration)                       { c.now = c.now.Add(d) }
func (c *fakeClock) AfterFunc(time.Duration, func()) clock.Timer { panic("unused") }

func TestRateLimited(t *testing.T) {
	var lines []string
	sink := func(f string, a ...interface{}) { lines = append(lines, fmt.Sprintf(f, a...)) }
	clk := &fakeClock{now: time.Unix(1000, 0)}
	logf := RateLimited(sink, clk, time.Second, 2, 8)
	for i := 0; i < 5; i++ {
		logf("x %d", i)
	}
	logf("other")
	if got := strings.Join(lines, "|"); got != "x 0|x 1|other" {
		t.Fatalf("got %q", got)
	}
	clk.Sleep(time.Second)
	logf("x %d", 9)
	if got := lines[len(lines)-2]; !strings.Contains(got, "3 lines") {
		t.Fatalf("want suppression note, got %q", got)
	}
	if lines[len(lines)-1] != "x 9" {
		t.Fatalf("got %q", lines[len(lines)-1])
	}
}

func TestRateLimitedMaxKeys(t *testing.T) {
	n := 0
	clk := &fakeClock{now: time.Unix(1000, 0)}
	logf := RateLimited(func(string, ...interface{}) { n++ }, clk, time.Second, 1, 2)
	for i := 0; i < 100; i++ {
		logf(fmt.Sprintf("fmt %d", i))
	}
	if n != 3 { // two tracked keys plus one shared overflow bucket
		t.Fatalf("logged %d lines, want 3", n)
	}
}
