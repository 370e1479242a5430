package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watcher defaults.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
)

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Dir is the configuration directory, watched recursively
	// (directories created later included; hidden ones skipped).
	Dir string
	// Store receives every reload. Required.
	Store *Store
	// Debounce is how long the directory must stay quiet after a change
	// before it is reloaded (default DefaultDebounce), so that an editor's
	// write-rename-chmod or a tool writing many files gives one reload.
	Debounce time.Duration
	// MaxDelay bounds the wait while changes keep coming (default
	// DefaultMaxDelay): a change is applied at most MaxDelay (plus the
	// time of one load) after it happened.
	MaxDelay time.Duration
	// OnChange is called after each reload that changed the objects in
	// force or the set of problems, with the changes and every current
	// problem (errors and warnings). Calls come one at a time, from the
	// goroutine that reloads; they should not block for long.
	OnChange func(Changes, []*Error)
	// OnError is called with problems of the watch itself (an fsnotify
	// error, a directory that cannot be read or watched); nil ignores them.
	// The configuration in force is unchanged by such problems.
	OnError func(error)
}

// Watcher reloads a configuration directory into a Store when it changes.
type Watcher struct {
	opts WatcherOptions
	fsw  *fsnotify.Watcher

	mu       sync.Mutex // serializes reloads; guards lastErrs and cache
	lastErrs []string
	cache    fileCache
}

// NewWatcher starts watching opts.Dir (events are queued from now on) but
// does not load it: call Reload for the initial configuration, then Run.
func NewWatcher(opts WatcherOptions) (*Watcher, error) {
	if opts.Store == nil {
		return nil, errors.New("config watcher: Store is required")
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if info, err := os.Stat(opts.Dir); err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("config watcher: %s is not a directory", opts.Dir)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	w := &Watcher{opts: opts, fsw: fsw, cache: fileCache{}}
	if err := w.addTree(opts.Dir); err != nil {
		fsw.Close()
		return nil, err
	}
	return w, nil
}

// addTree watches dir and the non-hidden directories below it.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return fmt.Errorf("config watcher: %w", err)
			}
			w.report(fmt.Errorf("config watcher: %w", err))
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && isHidden(d.Name()) {
			return fs.SkipDir
		}
		if err := w.fsw.Add(path); err != nil {
			if path == dir {
				return fmt.Errorf("config watcher: watch %s: %w", path, err)
			}
			w.report(fmt.Errorf("config watcher: watch %s: %w", path, err))
		}
		return nil
	})
}

// report passes a watch problem to OnError.
func (w *Watcher) report(err error) {
	if w.opts.OnError != nil {
		w.opts.OnError(err)
	}
}

// Reload loads the directory now (decoding again only the files whose
// content changed since the last Reload), applies it to the Store, and
// calls OnChange when the objects in force or the problems changed. A directory
// that cannot be read leaves the Store unchanged and returns the error.
// Safe for concurrent use: reloads are serialized.
func (w *Watcher) Reload() (Changes, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, err := loadDir(w.opts.Dir, w.cache)
	if err != nil {
		return Changes{}, err
	}
	ch := w.opts.Store.Apply(r)
	errs := w.opts.Store.Errors()
	texts := make([]string, len(errs))
	for i, e := range errs {
		texts[i] = e.Error()
	}
	if (!ch.Empty() || !slices.Equal(texts, w.lastErrs)) && w.opts.OnChange != nil {
		w.opts.OnChange(ch, errs)
	}
	w.lastErrs = texts
	return ch, nil
}

// Close stops watching: a running Run returns. It is safe to call more
// than once, and needed only when Run is never called.
func (w *Watcher) Close() error { return w.fsw.Close() }

// Run reacts to changes until ctx is done (or Close is called), then stops watching and returns
// nil. Every change (a file or directory created, written, renamed or
// removed, hidden names included, so that Kubernetes ConfigMap volumes'
// "..data" swaps count) schedules a debounced Reload. Call Run once.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.fsw.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var pendingSince time.Time // zero: no reload pending
	schedule := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		delay := min(w.opts.Debounce, time.Until(pendingSince.Add(w.opts.MaxDelay)))
		timer.Reset(max(delay, 0))
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Has(fsnotify.Create) && !isHidden(filepath.Base(ev.Name)) {
				if info, err := os.Stat(ev.Name); err == nil && info.IsDir() {
					_ = w.addTree(ev.Name)
				}
			}
			schedule()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return nil
			}
			w.report(fmt.Errorf("config watcher: %w", err))
			schedule() // events may have been lost: reload to be sure
		case <-timer.C:
			pendingSince = time.Time{}
			if _, err := w.Reload(); err != nil {
				w.report(err)
			}
		}
	}
}
