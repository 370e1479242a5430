package localratelimit

import (
	"sync/atomic"
	"time"
)

// Bucket is a lock-free token bucket with Envoy's TokenBucket semantics: it
// starts full with max tokens; every fill interval (counted from the
// bucket's creation) adds perFill tokens, never beyond max. Fills are
// computed lazily when a token is taken, so the bucket needs no timer.
// Its whole state is one atomic word (the index of the last fill interval
// seen, 32 bits, and the tokens, 32 bits) updated by compare-and-swap.
type Bucket struct {
	max, perFill uint64
	interval     time.Duration
	start        time.Time
	now          func() time.Time
	state        atomic.Uint64
}

// NewBucket returns a full bucket. now is the clock (nil: time.Now).
// interval must be positive.
func NewBucket(max, perFill uint32, interval time.Duration, now func() time.Time) *Bucket {
	if now == nil {
		now = time.Now
	}
	b := &Bucket{max: uint64(max), perFill: uint64(perFill), interval: interval, now: now}
	b.start = now()
	b.state.Store(uint64(max))
	return b
}

// Max is the bucket's capacity (max_tokens).
func (b *Bucket) Max() uint32 { return uint32(b.max) }

// Take consumes one token when there is one. remaining is the number of
// tokens left afterwards; reset is the time until the next fill. It does
// not allocate or block; concurrent callers retry their compare-and-swap.
func (b *Bucket) Take() (ok bool, remaining uint32, reset time.Duration) {
	elapsed := b.now().Sub(b.start)
	idx := uint32(elapsed / b.interval)
	reset = b.interval - elapsed%b.interval
	for {
		old := b.state.Load()
		last, tokens := uint32(old>>32), old&0xffffffff
		// A fill index behind last (another caller read a later clock)
		// adds nothing; uint32 arithmetic survives the index wrapping.
		if d := idx - last; d != 0 && d < 1<<31 {
			tokens = min(b.max, tokens+uint64(d)*b.perFill)
			last = idx
		}
		if tokens == 0 {
			if b.state.CompareAndSwap(old, uint64(last)<<32) {
				return false, 0, reset
			}
			continue
		}
		tokens--
		if b.state.CompareAndSwap(old, uint64(last)<<32|tokens) {
			return true, uint32(tokens), reset
		}
	}
}
