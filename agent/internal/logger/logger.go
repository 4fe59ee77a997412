// Package logger provides the Logf type the agent passes around, and a rate
// limiter for it: logs share a slow serial console, and a misbehaving host or
// process must not be able to flood it.
package logger

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"islet/agent/internal/clock"
)

// Logf logs one line. It never blocks for long and never fails.
type Logf func(format string, args ...interface{})

// Discard drops everything.
func Discard(string, ...interface{}) {}

// ToWriter returns a Logf that writes "prefix: line\n" to w under a mutex.
func ToWriter(w io.Writer, prefix string) Logf {
	var mu sync.Mutex
	return func(format string, args ...interface{}) {
		msg := fmt.Sprintf(format, args...)
		msg = strings.TrimRight(msg, "\n")
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s: %s\n", prefix, msg)
	}
}

type bucket struct {
	start      time.Time
	n          int
	suppressed int
}

// RateLimited wraps logf so that each format string is logged at most burst
// times per interval. When a format string is allowed again after being
// suppressed, a note with the number of dropped lines is logged first. At
// most maxKeys format strings are tracked; beyond that, untracked formats
// share one bucket.
func RateLimited(logf Logf, clk clock.Clock, interval time.Duration, burst, maxKeys int) Logf {
	var mu sync.Mutex
	buckets := make(map[string]*bucket)
	const overflowKey = "\x00overflow"
	return func(format string, args ...interface{}) {
		now := clk.Now()
		mu.Lock()
		key := format
		b, ok := buckets[key]
		if !ok {
			if len(buckets) >= maxKeys {
				key = overflowKey
				b = buckets[key]
			}
			if b == nil {
				b = &bucket{start: now}
				buckets[key] = b
			}
		}
		if now.Sub(b.start) >= interval {
			b.start = now
			b.n = 0
		}
		suppressed := 0
		if b.n < burst {
			b.n++
			suppressed, b.suppressed = b.suppressed, 0
		} else {
			b.suppressed++
			mu.Unlock()
			return
		}
		mu.Unlock()
		if suppressed > 0 {
			logf("[%d lines like %q suppressed]", suppressed, format)
		}
		logf(format, args...)
	}
}
