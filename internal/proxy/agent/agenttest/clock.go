package agenttest

import (
	"sync"
	"testing"
	"time"
)

// Clock is a fake clock: time moves only with Advance. It satisfies
// certs.Clock.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waits   []time.Duration
	changed chan struct{}
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewClock starts at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now, changed: make(chan struct{})} }

// Now is the fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires once the clock has been advanced by d (at once if d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waits = append(c.waits, d)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the time forward and fires the waiters that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// WaitAfterCalls waits until After has been called at least n times in
// all and returns the durations asked for, in order.
func (c *Clock) WaitAfterCalls(t testing.TB, n int, timeout time.Duration) []time.Duration {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got, ch := append([]time.Duration(nil), c.waits...), c.changed
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fake clock: %d After calls, want %d within %v", len(got), n, timeout)
		}
	}
}
