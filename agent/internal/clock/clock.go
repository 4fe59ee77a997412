// Package clock abstracts time so tests can control it.
package clock

import "time"

// Clock is the time source the agent's packages take as an argument.
type Clock interface {
	Now() time.Time
	Sleep(d time.Duration)
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable pending call, as returned by AfterFunc.
type Timer interface {
	Stop() bool
}

// Real is the wall clock.
type Real struct{}

func (Real) Now() time.Time                            { return time.Now() }
func (Real) Sleep(d time.Duration)                     { time.Sleep(d) }
func (Real) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
