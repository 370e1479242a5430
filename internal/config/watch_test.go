package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// pushDeadline is the bound: a change turns into a push within 1 s.
const pushDeadline = time.Second

// event is one OnChange call.
type event struct {
	ch   Changes
	errs []*Error
}

// startWatcher runs a watcher on dir with the given debounce, after an
// initial Reload; OnChange calls arrive on the returned channel.
func startWatcher(t *testing.T, dir string, debounce, maxDelay time.Duration) (*Store, <-chan event) {
	t.Helper()
	s := NewStore()
	events := make(chan event, 64)
	w, err := NewWatcher(WatcherOptions{
		Dir: dir, Store: s, Debounce: debounce, MaxDelay: maxDelay,
		OnChange: func(ch Changes, errs []*Error) { events <- event{ch, errs} },
		OnError:  func(err error) { t.Logf("watch error: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// Drain the initial load's event, if any.
	select {
	case <-events:
	default:
	}
	return s, events
}

// waitFor waits until an OnChange call satisfies ok, within deadline.
func waitFor(t *testing.T, events <-chan event, deadline time.Duration, what string, ok func(event) bool) event {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case ev := <-events:
			if ok(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no change %s within %v", what, deadline)
		}
	}
}

// write writes a file, creating its directory.
func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatcher: real files in a temporary directory; each change must reach
// OnChange within the push deadline.
func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), we("a", "10.0.0.1"))
	s, events := startWatcher(t, dir, 50*time.Millisecond, 200*time.Millisecond)
	if addressOf(s, "a") != "10.0.0.1" {
		t.Fatal("initial load not applied")
	}

	start := time.Now()
	write(t, filepath.Join(dir, "b.yaml"), we("b", "10.0.0.2"))
	waitFor(t, events, pushDeadline, "for a new file", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Added), []string{"default/b"}) })
	t.Logf("new file applied after %v", time.Since(start))

	// An editor's save: write a temporary file, rename it over the original.
	tmp := filepath.Join(dir, ".a.yaml.swp")
	write(t, tmp, we("a", "10.0.0.9"))
	if err := os.Rename(tmp, filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, pushDeadline, "for a rename over a file", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Updated), []string{"default/a"}) })
	if addressOf(s, "a") != "10.0.0.9" {
		t.Fatalf("address = %q after rename", addressOf(s, "a"))
	}

	// A broken edit: reported, the last good version stays.
	write(t, filepath.Join(dir, "a.yaml"), we("a", "nope nope"))
	ev := waitFor(t, events, pushDeadline, "for a broken edit", func(ev event) bool { return len(ev.errs) > 0 })
	if !slices.Equal(keyNames(ev.ch.Kept), []string{"default/a"}) || addressOf(s, "a") != "10.0.0.9" {
		t.Fatalf("kept %v, address %q", ev.ch.Kept, addressOf(s, "a"))
	}

	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, pushDeadline, "for a deleted file", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Removed), []string{"default/b"}) })

	// A new directory, then a file written into it later: the directory
	// itself is watched.
	sub := filepath.Join(dir, "team", "prod")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(sub, "c.yaml"), we("c", "10.0.0.3"))
	waitFor(t, events, pushDeadline, "for a file in a new directory", func(ev event) bool { return slices.Contains(keyNames(ev.ch.Added), "default/c") })
	write(t, filepath.Join(sub, "c.yaml"), we("c", "10.0.0.4"))
	waitFor(t, events, pushDeadline, "for a write in the new directory", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Updated), []string{"default/c"}) })

	// Removing the directory removes its objects.
	if err := os.RemoveAll(filepath.Join(dir, "team")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, pushDeadline, "for a removed directory", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Removed), []string{"default/c"}) })
}

// TestWatcherMaxDelay: changes that never stop for a whole debounce period
// still get applied within MaxDelay.
func TestWatcherMaxDelay(t *testing.T) {
	dir := t.TempDir()
	// A debounce far longer than the test: only MaxDelay can fire.
	_, events := startWatcher(t, dir, time.Minute, 200*time.Millisecond)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				write(t, filepath.Join(dir, "busy.yaml"), we("busy", "10.0.0.1"))
			}
		}
	}()
	waitFor(t, events, pushDeadline, "while changes keep coming", func(ev event) bool { return slices.Equal(keyNames(ev.ch.Added), []string{"default/busy"}) })
	close(stop)
	wg.Wait()
}

// TestWatcherDebounce: a burst of writes gives one reload with the final
// content, not one per write.
func TestWatcherDebounce(t *testing.T) {
	dir := t.TempDir()
	s, events := startWatcher(t, dir, 200*time.Millisecond, 5*time.Second)
	for i := 1; i <= 20; i++ {
		write(t, filepath.Join(dir, "burst.yaml"), we("burst", fmt.Sprintf("10.0.0.%d", i)))
	}
	ev := waitFor(t, events, 2*pushDeadline, "after a burst", func(event) bool { return true })
	if !slices.Equal(keyNames(ev.ch.Added), []string{"default/burst"}) || addressOf(s, "burst") != "10.0.0.20" {
		t.Fatalf("first reload: %+v, address %q", ev.ch, addressOf(s, "burst"))
	}
	// The burst took far less than the 200ms quiet period, so the first
	// reload already saw the last write and no other reload follows.
	select {
	case ev := <-events:
		t.Fatalf("a second reload after the burst: %+v", ev.ch)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestNewWatcherErrors: a missing directory or store is refused.
func TestNewWatcherErrors(t *testing.T) {
	if _, err := NewWatcher(WatcherOptions{Dir: filepath.Join(t.TempDir(), "nope"), Store: NewStore()}); err == nil {
		t.Error("missing directory accepted")
	}
	if _, err := NewWatcher(WatcherOptions{Dir: t.TempDir()}); err == nil {
		t.Error("missing store accepted")
	}
}

// TestWatcherClose: Close makes Run return and can be repeated.
func TestWatcherClose(t *testing.T) {
	w, err := NewWatcher(WatcherOptions{Dir: t.TempDir(), Store: NewStore()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
