package xds

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// BenchmarkPush measures Push for 100 and 500 proxies of a 1,000-service
// mesh (xdstest's synthetic generator, translation results cached per
// snapshot) when one VirtualService's weights change: the server's own
// work per push, without streams, on one worker and on the default
// (GOMAXPROCS). Reports the live heap per proxy after the initial
// computation (shared sets included, so it falls with more proxies).
func BenchmarkPush(b *testing.B) {
	for _, tc := range []struct{ proxies, workers int }{{100, 0}, {500, 1}, {500, 0}} {
		proxies := tc.proxies
		b.Run(fmt.Sprintf("proxies=%d/workers=%d", proxies, tc.workers), func(b *testing.B) {
			mesh := xdstest.NewMesh(xdstest.MeshOptions{})
			gen := xdstest.NewGenerator()
			s, err := New(Options{Generator: gen, PushWorkers: tc.workers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			snaps := []*model.Snapshot{mesh.Snapshot("a", nil), mesh.Snapshot("b", map[int]uint32{0: 50})}
			s.Push(snaps[0])
			// Warm the generator's cache for both snapshots.
			p0, _ := proxyFromNode(mesh.Node(0))
			gen.Generate(snaps[1], p0)
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range proxies {
				p, err := proxyFromNode(mesh.Node(i))
				if err != nil {
					b.Fatal(err)
				}
				s.attach(p)
			}
			var after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&after)
			heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(proxies)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				s.Push(snaps[i%2])
			}
			b.ReportMetric(heap, "heap-B/proxy")
		})
	}
}
