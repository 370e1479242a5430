package dashboard

import (
	"math"
	"testing"
	"time"
)

func counted(requests, errs float64, buckets map[float64]float64) *counts {
	return &counts{requests: requests, errors: errs, buckets: buckets}
}

// TestHistoryWindow: the history keeps the newest point at or before the
// window's start and everything after it, and at least two points.
func TestHistoryWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var h history
	for i := range 10 {
		h.add(point{at: t0.Add(time.Duration(i) * 5 * time.Second), s: sample{}}, 20*time.Second)
	}
	// Newest at 45 s: window start 25 s, so points 25..45 s stay.
	if len(h.points) != 5 || !h.points[0].at.Equal(t0.Add(25*time.Second)) {
		t.Fatalf("kept %d points from %v, want 5 from 25s", len(h.points), h.points[0].at.Sub(t0))
	}
	// A window shorter than the interval still keeps two points.
	var h2 history
	for i := range 4 {
		h2.add(point{at: t0.Add(time.Duration(i) * 5 * time.Second), s: sample{}}, time.Second)
	}
	if len(h2.points) != 2 {
		t.Fatalf("kept %d points, want 2", len(h2.points))
	}
}

// TestRates: increases per second between the oldest and newest point,
// with new flows counted from zero and counter resets handled as
// Prometheus does.
func TestRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := flowKey{Reporter: "source", SrcWorkload: "a"}
	b := flowKey{Reporter: "source", SrcWorkload: "b"}
	c := flowKey{Reporter: "source", SrcWorkload: "c"}
	old := sample{
		a: counted(100, 10, map[float64]float64{10: 50, inf: 100}),
		c: counted(500, 0, map[float64]float64{10: 500, inf: 500}),
	}
	cur := sample{
		a: counted(150, 20, map[float64]float64{10: 60, inf: 150}), // +50 in 10 s
		b: counted(30, 3, nil),                                     // born since: +30
		c: counted(40, 0, map[float64]float64{10: 20, inf: 40}),    // reset: +40
	}
	var h history
	h.add(point{at: t0, s: old}, time.Minute)
	if r := h.rates(); r != nil {
		t.Fatalf("one point gives rates %v, want none", r)
	}
	h.add(point{at: t0.Add(10 * time.Second), s: cur}, time.Minute)
	r := h.rates()
	tests := []struct {
		k        flowKey
		rps, eps float64
		buckets  map[float64]float64
	}{
		{a, 5, 1, map[float64]float64{10: 1, inf: 5}},
		{b, 3, 0.3, nil},
		{c, 4, 0, map[float64]float64{10: 2, inf: 4}},
	}
	for _, tt := range tests {
		f := r[tt.k]
		if f == nil {
			t.Errorf("%s: no rate", tt.k.SrcWorkload)
			continue
		}
		if math.Abs(f.rps-tt.rps) > 1e-9 || math.Abs(f.eps-tt.eps) > 1e-9 {
			t.Errorf("%s: rps %v eps %v, want %v %v", tt.k.SrcWorkload, f.rps, f.eps, tt.rps, tt.eps)
		}
		if len(f.buckets) != len(tt.buckets) {
			t.Errorf("%s: buckets %v, want %v", tt.k.SrcWorkload, f.buckets, tt.buckets)
		}
		for le, v := range tt.buckets {
			if math.Abs(f.buckets[le]-v) > 1e-9 {
				t.Errorf("%s: bucket %v = %v, want %v", tt.k.SrcWorkload, le, f.buckets[le], v)
			}
		}
	}
}

// TestFlowAdd: summing flows sums rates and buckets.
func TestFlowAdd(t *testing.T) {
	var f flow
	f.add(&flow{rps: 2, eps: 1, buckets: map[float64]float64{10: 1, inf: 2}})
	f.add(&flow{rps: 3, buckets: map[float64]float64{10: 3, inf: 3}})
	f.add(&flow{rps: 1})
	if f.rps != 6 || f.eps != 1 || f.buckets[10] != 4 || f.buckets[inf] != 5 {
		t.Fatalf("%+v", f)
	}
}
