package demoapp

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault makes a service misbehave on purpose, so that retries, timeouts,
// outlier detection and circuit breaking have something to act on
// (Istio's bookinfo does the same with ratings versions). It is the
// application's own behaviour, unlike a VirtualService fault, which the
// caller's sidecar injects.
type Fault struct {
	// Delay is added before every response.
	Delay time.Duration
	// FailPercent of the requests (0-100) fail: HTTP services answer
	// FailStatus, reviews answers gRPC UNAVAILABLE.
	FailPercent int
	// FailStatus is the HTTP status of a failure (500 when zero: a status
	// that Istio's default retry policy does not retry, so that the
	// retries task shows the difference a retry policy makes).
	FailStatus int
}

func (f Fault) validate() error {
	if f.Delay < 0 {
		return fmt.Errorf("demoapp: fault delay %v is negative", f.Delay)
	}
	if f.FailPercent < 0 || f.FailPercent > 100 {
		return fmt.Errorf("demoapp: fault FAIL_PERCENT %d: write a number from 0 to 100", f.FailPercent)
	}
	if f.FailStatus != 0 && (f.FailStatus < 400 || f.FailStatus > 599) {
		return fmt.Errorf("demoapp: fault FAIL_STATUS %d: write an error status, 400-599", f.FailStatus)
	}
	return nil
}

// status returns the HTTP status of a failure.
func (f Fault) status() int {
	if f.FailStatus == 0 {
		return 500
	}
	return f.FailStatus
}

// apply waits for the delay (or until done is closed) and reports whether
// this request must fail.
func (f Fault) apply(done <-chan struct{}) (fail bool) {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
		}
	}
	return f.FailPercent > 0 && rand.IntN(100) < f.FailPercent
}
