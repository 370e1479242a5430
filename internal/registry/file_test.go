package registry

import (
	"sync"
	"sync/atomic"
	"testing"
)

const fileBase = `
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.com]
  resolution: STATIC
  ports: [{name: http, number: 80}]
  workloadSelector: {labels: {app: web}}
---
kind: WorkloadEntry
metadata: {name: web-1}
spec: {address: 10.0.0.1, labels: {app: web}}
---
kind: VirtualService
metadata: {name: vs}
spec: {hosts: [web.example.com]}
`

func TestFileUpdate(t *testing.T) {
	f := NewFile(FileOptions{})
	if f.Name() != DefaultFileName || f.Provider() != External {
		t.Fatalf("identity %q %q", f.Name(), f.Provider())
	}
	if got := f.Services(); len(got) != 0 {
		t.Fatalf("a new registry has %d services", len(got))
	}
	var notified atomic.Int32
	cancel := f.Subscribe(func() { notified.Add(1) })

	base := objects(t, fileBase)
	if _, changed := f.Update(base); !changed || notified.Load() != 1 {
		t.Fatalf("first update: changed=%v notified=%d", changed, notified.Load())
	}
	first := f.Services()
	if len(first) != 1 || len(first[0].Endpoints) != 1 {
		t.Fatalf("services: %s", render(first))
	}

	// The same objects, in another order and as new pointers with the same
	// versions, plus a changed VirtualService: nothing to recompute.
	again := objects(t, fileBase)
	again[0], again[1] = again[1], again[0]
	again[2].Version = "vs-changed"
	if _, changed := f.Update(again); changed || notified.Load() != 1 {
		t.Fatalf("unchanged inputs: changed=%v notified=%d", changed, notified.Load())
	}
	if got := f.Services(); &got[0] != &first[0] {
		t.Fatal("an unchanged registry must return the same services")
	}

	// A second WorkloadEntry: recomputed, notified, and the old result is
	// left as it was (immutability).
	more := append(objects(t, fileBase), objects(t, `
kind: WorkloadEntry
metadata: {name: web-2}
spec: {address: 10.0.0.2, labels: {app: web}}
`)...)
	if _, changed := f.Update(more); !changed || notified.Load() != 2 {
		t.Fatalf("new WorkloadEntry: changed=%v notified=%d", changed, notified.Load())
	}
	if got := f.Services(); len(got[0].Endpoints) != 2 {
		t.Fatalf("after the update: %s", render(got))
	}
	if len(first[0].Endpoints) != 1 {
		t.Fatal("an update modified a result returned before it")
	}

	// Problems come back from Update and stay readable.
	bad := objects(t, `
kind: ServiceEntry
metadata: {name: dyn}
spec: {hosts: ["*.x.example.com"], resolution: DYNAMIC_DNS, ports: [{name: http, number: 80}]}
`)
	problems, _ := f.Update(bad)
	if len(problems) != 1 || problems[0].Warning || len(f.Problems()) != 1 {
		t.Fatalf("problems: %v / %v", problems, f.Problems())
	}
	if len(f.Services()) != 0 {
		t.Fatalf("a rejected ServiceEntry gave services: %s", render(f.Services()))
	}

	cancel()
	cancel() // idempotent
	f.Update(base)
	if notified.Load() != 3 {
		t.Fatalf("notified %d times, want 3 (none after cancel)", notified.Load())
	}
}

// TestFileConcurrent: readers see whole results while updates run (run
// with -race).
func TestFileConcurrent(t *testing.T) {
	f := NewFile(FileOptions{})
	a := objects(t, fileBase)
	b := append(objects(t, fileBase), objects(t, `
kind: WorkloadEntry
metadata: {name: web-2}
spec: {address: 10.0.0.2, labels: {app: web}}
`)...)
	f.Update(a)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				svcs := f.Services()
				if n := len(svcs[0].Endpoints); n != 1 && n != 2 {
					t.Errorf("torn read: %d endpoints", n)
					return
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			f.Update(b)
		} else {
			f.Update(a)
		}
	}
	close(stop)
	wg.Wait()
}

func TestSubscribersCallbackMayCancel(t *testing.T) {
	var s subscribers
	var calls []string
	var cancelA func()
	cancelA = s.add(func() { calls = append(calls, "a"); cancelA() })
	s.add(func() { calls = append(calls, "b") })
	s.notify()
	s.notify()
	if got := len(calls); got != 3 || calls[0] != "a" || calls[1] != "b" || calls[2] != "b" {
		t.Fatalf("calls %v, want [a b b]", calls)
	}
}
