package stats

import "strconv"

// AppendText appends Envoy's GET /stats text rendering of ms to b: one
// "name: value" line per counter and gauge, then one line per histogram
// (Envoy prints the two groups in separate passes, each in name order).
// Control characters in names print as '_'. ms is rendered in the order
// given; Store.Snapshot returns it sorted by
// name, as Envoy prints it.
//
// Histograms follow Envoy's StatsTextRender: "name: No recorded values"
// until the first observation, else per HistogramMode
//
//	name: P0(interval,cumulative) P25(..) P50(..) P75(..) P90(..) P95(..) P99(..) P99.5(..) P99.9(..) P100(..)
//	name: B0.5(interval,cumulative) B1(..) ...   (cumulative and disjoint)
//
// weft keeps no flush interval, so each interval value repeats the
// cumulative one. Quantiles are interpolated from the fixed buckets (see
// quantile), a coarser estimate than Envoy's circllhist.
func AppendText(b []byte, ms []*Metric, o RenderOptions) []byte {
	for _, m := range ms {
		if m.Kind == KindHistogram || !o.wantKind(m.Kind) || !o.shown(m) {
			continue
		}
		b = appendTextName(b, m.Name)
		b = append(b, ": "...)
		b = strconv.AppendInt(b, m.Value(), 10)
		b = append(b, '\n')
	}
	if !o.wantKind(KindHistogram) {
		return b
	}
	for _, m := range ms {
		if m.Kind != KindHistogram || m.histogram == nil || !o.shown(m) {
			continue
		}
		b = appendTextName(b, m.Name)
		b = append(b, ": "...)
		b = appendHistogramText(b, m.histogram.Snapshot(), o.Histograms)
		b = append(b, '\n')
	}
	return b
}

// appendTextName appends a stat name with ASCII control characters replaced
// by '_', so a tag value holding a newline cannot split a line in two.
// Envoy's stat names never hold them (its tag values come from sanitized
// names); weft's store accepts any string, so the renderer keeps the
// one-line-per-stat shape itself.
func appendTextName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			b = append(b, '_')
		} else {
			b = append(b, c)
		}
	}
	return b
}

// appendHistogramText appends one histogram's summary without its name.
func appendHistogramText(b []byte, s HistogramSnapshot, mode HistogramMode) []byte {
	if s.Count == 0 {
		return append(b, "No recorded values"...)
	}
	if mode == HistogramQuantiles {
		for i, q := range supportedQuantiles() {
			if i > 0 {
				b = append(b, ' ')
			}
			v := quantile(&s, q)
			b = append(b, 'P')
			b = strconv.AppendFloat(b, q*100, 'g', -1, 64)
			b = append(b, '(')
			b = appendFloat(b, v)
			b = append(b, ',')
			b = appendFloat(b, v)
			b = append(b, ')')
		}
		return b
	}
	counts := bucketCounts(&s, mode)
	for i, bound := range s.Bounds {
		if i > 0 {
			b = append(b, ' ')
		}
		// Envoy prints the bound with fmt's {:g}: six significant digits,
		// scientific from 1e6 on ("B3.6e+06"). Go's 'g' with the shortest
		// precision switches at the same exponent.
		b = append(b, 'B')
		b = strconv.AppendFloat(b, bound, 'g', -1, 64)
		b = append(b, '(')
		b = strconv.AppendUint(b, counts[i], 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, counts[i], 10)
		b = append(b, ')')
	}
	return b
}

// bucketCounts returns one count per finite bound: cumulative counts, or
// each bucket's own count for HistogramDisjoint. Observations above the
// last bound appear in no finite bucket, as in Envoy's bucket summaries.
func bucketCounts(s *HistogramSnapshot, mode HistogramMode) []uint64 {
	out := make([]uint64, len(s.Bounds))
	var prev uint64
	for i := range s.Bounds {
		if i >= len(s.Cumulative) {
			break
		}
		out[i] = s.Cumulative[i]
		if mode == HistogramDisjoint {
			out[i] -= prev
		}
		prev = s.Cumulative[i]
	}
	return out
}
