package xdsclient

import (
	"math/rand/v2"
	"time"
)

// Backoff is the reconnection policy: the n-th consecutive failed attempt
// waits a random time in [d/2, d] where d = min(Base·2ⁿ, Max) ("equal
// jitter", so that proxies that lost the same control plane do not come
// back in step). Envoy's gRPC streams back off the same way, from 500 ms
// to 30 s by default.
type Backoff struct {
	Base time.Duration // default 500 ms
	Max  time.Duration // default 30 s
}

// withDefaults fills zero fields with Envoy's defaults.
func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = 500 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	return b
}

// Delay returns the wait before attempt n+1 after n consecutive failures
// (n ≥ 0), drawn with r (a value in [0, 1)).
func (b Backoff) Delay(n int, r float64) time.Duration {
	b = b.withDefaults()
	d := b.Base
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return d/2 + time.Duration(r*float64(d/2))
}

// next returns the wait after n consecutive failures.
func (b Backoff) next(n int) time.Duration { return b.Delay(n, rand.Float64()) }
