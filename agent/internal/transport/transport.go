// Package transport finds and opens the agent's virtio-serial port and keeps
// serving it: a read that returns 0 bytes means no host client is connected,
// so the loop backs off and serves the same port again when one connects.
package transport

import (
	"context"
	"errors"
	"io"
	"time"

	"islet/agent/internal/logger"
)

// DefaultPortName is the virtio-serial port the host connects to.
const DefaultPortName = "org.islet.agent.0"

// Back-off between attempts while no host client is connected or the port
// cannot be opened.
const (
	MinBackoff = 20 * time.Millisecond
	MaxBackoff = 200 * time.Millisecond
)

// Backoff doubles from Min to Max; Reset starts again from Min.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the delay to wait now.
func (b *Backoff) Next() time.Duration {
	if b.next < b.Min {
		b.next = b.Min
	}
	d := b.next
	b.next *= 2
	if b.next > b.Max {
		b.next = b.Max
	}
	return d
}

// Reset makes the next delay Min.
func (b *Backoff) Reset() { b.next = 0 }

// Port is an opened port.
type Port interface {
	io.ReadWriteCloser
}

// ServeFunc serves one host connection on c until it ends (see
// server.Server.Serve): io.EOF or io.ErrUnexpectedEOF mean the client went
// away and the same port can be served again; other errors make the loop
// reopen the port.
type ServeFunc func(c io.ReadWriter) error

// Loop serves the port forever (until ctx is done).
type Loop struct {
	Open  func() (Port, error)
	Serve ServeFunc
	Sleep func(time.Duration)
	Logf  logger.Logf
}

// Run runs the loop; it returns only when ctx is done.
func (l *Loop) Run(ctx context.Context) {
	bo := Backoff{Min: MinBackoff, Max: MaxBackoff}
	var port Port
	defer func() {
		if port != nil {
			port.Close()
		}
	}()
	for ctx.Err() == nil {
		if port == nil {
			p, err := l.Open()
			if err != nil {
				l.Logf("open port: %v", err)
				l.Sleep(bo.Next())
				continue
			}
			port = p
			l.Logf("port open")
		}
		c := &countingConn{Port: port}
		err := l.Serve(c)
		if c.n > 0 {
			bo.Reset()
			l.Logf("host connection ended after %d bytes: %v", c.n, err)
		}
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			l.Logf("port: %v; reopening", err)
			port.Close()
			port = nil
		}
		l.Sleep(bo.Next())
	}
}

// countingConn counts bytes read, so the loop can tell a real session from
// an immediate "no client" EOF, and passes SetWriteDeadline through.
type countingConn struct {
	Port
	n int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Port.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	if d, ok := c.Port.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return errors.New("no write deadline")
}
