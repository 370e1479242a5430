package xds

import (
	"context"
	"testing"
	"time"
)

func TestSendBudget(t *testing.T) {
	ctx := testCtx(t)
	b := newSendBudget(100, time.Hour)
	h1 := b.acquire(ctx, 60)
	h2 := b.acquire(ctx, 40)
	if h1 == nil || h2 == nil || b.used != 100 {
		t.Fatalf("within the budget: holds %v %v, used %d", h1, h2, b.used)
	}
	got := make(chan *hold)
	go func() { got <- b.acquire(ctx, 50) }()
	select {
	case h := <-got:
		t.Fatalf("acquired %v over the budget", h)
	case <-time.After(20 * time.Millisecond):
		// Still waiting, as it should: this is the assertion's window, not
		// synchronisation.
	}
	b.release(h1)
	b.release(h1) // twice: harmless
	if h := <-got; h == nil || b.used != 90 {
		t.Fatalf("after a release: hold %v, used %d, want 90", h, b.used)
	}
	// Larger than the whole budget: waits until nothing else is held.
	b.release(h2)
	go func() { got <- b.acquire(ctx, 500) }()
	select {
	case h := <-got:
		t.Fatalf("acquired %v while 50 bytes are held", h)
	case <-time.After(20 * time.Millisecond):
	}
	b.mu.Lock()
	for h := range b.holds {
		b.drop(h)
	}
	b.mu.Unlock()
	if h := <-got; h == nil {
		t.Fatal("a response larger than the budget was never allowed")
	}
	// A cancelled wait returns nil.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if h := b.acquire(cctx, 1); h != nil {
		t.Fatalf("acquired %v with a cancelled context", h)
	}
}

func TestSendBudgetExpiresUnansweredHolds(t *testing.T) {
	// A proxy that never answers holds its bytes only for holdTimeout.
	b := newSendBudget(100, 30*time.Millisecond)
	ctx := testCtx(t)
	if b.acquire(ctx, 100) == nil {
		t.Fatal("no hold")
	}
	start := time.Now()
	if b.acquire(ctx, 10) == nil {
		t.Fatal("no hold after expiry")
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Errorf("acquired after %v, before the stuck hold expired", d)
	}
}

func TestBudgetedStream(t *testing.T) {
	ctx := testCtx(t)
	b := newSendBudget(100, time.Hour)
	s := newBudgeted(ctx, b, "")
	steps := []struct {
		name string
		do   func()
		used int64
	}{
		{"CDS sent", func() { s.sent("cds", "1", 30) }, 30},
		{"EDS sent", func() { s.sent("eds", "2", 20) }, 50},
		{"stale nonce does not release", func() { s.answered("cds", "0") }, 50},
		{"CDS ACK", func() { s.answered("cds", "1") }, 20},
		{"EDS sent again replaces the hold", func() { s.sent("eds", "3", 10) }, 10},
		{"stream end", s.finish, 0},
		{"no send after the end", func() {
			if s.sent("lds", "4", 5) {
				t.Error("sent after finish")
			}
		}, 0},
	}
	for _, st := range steps {
		st.do()
		if b.used != st.used {
			t.Errorf("%s: used %d, want %d", st.name, b.used, st.used)
		}
	}
}

// TestSendBudgetIdle: the idle signal comes when the last held byte is
// released, not before, and never blocks the releaser.
func TestSendBudgetIdle(t *testing.T) {
	ctx := testCtx(t)
	b := newSendBudget(100, time.Hour)
	h1, h2 := b.acquire(ctx, 10), b.acquire(ctx, 20)
	b.release(h1)
	select {
	case <-b.idle:
		t.Fatal("idle while 20 bytes are held")
	default:
	}
	if b.pending() != 20 {
		t.Fatalf("pending %d, want 20", b.pending())
	}
	b.release(h2)
	select {
	case <-b.idle:
	default:
		t.Fatal("no idle signal after the last release")
	}
	// Unread signals do not block: two idle moments, one token.
	b.release(b.acquire(ctx, 5))
	b.release(b.acquire(ctx, 5))
	if n := len(b.idle); n != 1 {
		t.Fatalf("%d idle tokens, want 1", n)
	}
}
