package certs

import (
	"math/rand/v2"
	"time"
)

// Clock is the time source of the Manager: the renewal schedule and the
// back-off waits go through it, so that tests can drive them.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// After delivers the time on the channel once d has passed; d <= 0
	// delivers at once.
	After(d time.Duration) <-chan time.Time
}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff is the wait between failed certificate requests: Initial after
// the first failure, multiplied by 2 after each further one up to Max,
// each wait spread by ±Jitter (a fraction) so that a fleet of proxies
// does not call the CA in step.
type Backoff struct {
	Initial time.Duration // default 1s
	Max     time.Duration // default 30s
	Jitter  float64       // default 0.1
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 30 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Jitter <= 0 {
		b.Jitter = 0.1
	}
	return b
}

// wait is the wait after the attempt-th consecutive failure (1-based);
// r01 is a uniform random number in [0, 1).
func (b Backoff) wait(attempt int, r01 float64) time.Duration {
	d := b.Initial
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	return time.Duration(float64(d) * (1 + b.Jitter*(2*r01-1)))
}

// rotateDelay is how long to wait from now before renewing a certificate
// created at created that expires at expires. It follows Istio's
// secret cache (security/pkg/nodeagent/cache/secretcache.go rotateTime,
// SECRET_GRACE_PERIOD_RATIO and SECRET_GRACE_PERIOD_RATIO_JITTER): the
// grace period is graceRatio ± up to jitter (a random sign, clamped to
// [0, 1]) of the lifetime expires−created, and renewal starts that long
// before expiry; a negative delay is 0. With Istio's defaults (0.5,
// 0.01) a 24 h certificate is renewed after 11h46m–12h14m.
func rotateDelay(now, created, expires time.Time, graceRatio, jitter float64, r01 float64, positive bool) time.Duration {
	j := r01 * jitter
	if !positive {
		j = -j
	}
	ratio := min(max(graceRatio+j, 0), 1)
	grace := time.Duration(ratio * float64(expires.Sub(created)))
	return max(expires.Add(-grace).Sub(now), 0)
}

// defaultRand is math/rand/v2's generator: jitter needs no cryptographic
// randomness.
func defaultRand() float64 { return rand.Float64() } // #nosec G404 -- jitter only
