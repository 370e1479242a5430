package stats

import (
	"math"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// StatType selects which kinds of stats a rendering shows, as Envoy's
// /stats?type= parameter does.
type StatType uint8

// Stat types. The zero value shows every kind.
const (
	TypeAll StatType = iota
	TypeCounters
	TypeGauges
	TypeHistograms
)

// HistogramMode selects how the text and JSON renderings print histograms,
// as Envoy's /stats?histogram_buckets= parameter does.
type HistogramMode uint8

// Histogram modes. The zero value prints quantile summaries (Envoy's
// default, histogram_buckets=none).
const (
	HistogramQuantiles HistogramMode = iota
	// HistogramCumulative prints each bucket's cumulative count.
	HistogramCumulative
	// HistogramDisjoint prints each bucket's own count.
	HistogramDisjoint
)

// RenderOptions selects the metrics a rendering shows and how. The zero
// value shows everything with quantile summaries.
type RenderOptions struct {
	// Filter, when set, keeps only metrics whose dotted Name it matches
	// anywhere (a partial match, as Envoy's filter=<re2> does).
	Filter *regexp.Regexp
	// UsedOnly keeps only metrics that have been written (see Used).
	UsedOnly bool
	// Type keeps one kind of metric. The Prometheus rendering ignores it,
	// as Envoy's /stats/prometheus does.
	Type StatType
	// Histograms is the histogram format of the text and JSON renderings.
	Histograms HistogramMode
}

// supportedQuantiles returns the quantiles the text and JSON renderings
// print, Envoy's HistogramStatisticsImpl defaults.
func supportedQuantiles() [10]float64 {
	return [10]float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1}
}

// Used reports whether m has been written. Envoy keeps a "used" flag set on
// the first write; weft approximates it from the value: a counter above
// zero, a gauge other than zero, a histogram with an observation. A gauge
// that went up and back to zero therefore counts as unused.
func Used(m *Metric) bool {
	switch m.Kind {
	case KindHistogram:
		return m.histogram != nil && m.histogram.count.Load() > 0
	default:
		return m.Value() != 0
	}
}

// shown applies the filter and used-only options, never the type.
func (o *RenderOptions) shown(m *Metric) bool {
	if o.UsedOnly && !Used(m) {
		return false
	}
	return o.Filter == nil || o.Filter.MatchString(m.Name)
}

// wantKind applies the type option.
func (o *RenderOptions) wantKind(k Kind) bool {
	switch o.Type {
	case TypeCounters:
		return k == KindCounter
	case TypeGauges:
		return k == KindGauge
	case TypeHistograms:
		return k == KindHistogram
	}
	return true
}

// quantile estimates the q-quantile (0 ≤ q ≤ 1) of s by linear
// interpolation inside the bucket that holds the rank, as Prometheus'
// histogram_quantile does. It returns NaN when s has no observations. The
// first bucket's lower edge is 0; a rank in the +Inf bucket reports the
// last finite bound. Envoy's circllhist gives finer answers; this is the
// best the fixed buckets allow.
func quantile(s *HistogramSnapshot, q float64) float64 {
	if s.Count == 0 || len(s.Cumulative) == 0 {
		return math.NaN()
	}
	rank := q * float64(s.Count)
	var prev uint64
	for i, cum := range s.Cumulative {
		if cum == prev || float64(cum) < rank {
			prev = cum
			continue
		}
		if i >= len(s.Bounds) {
			return s.Bounds[len(s.Bounds)-1]
		}
		lower := 0.0
		if i > 0 {
			lower = s.Bounds[i-1]
		}
		frac := (rank - float64(prev)) / float64(cum-prev)
		return roundSignificant(lower + (s.Bounds[i]-lower)*math.Max(frac, 0))
	}
	return s.Bounds[len(s.Bounds)-1]
}

// roundSignificant rounds v to 12 significant digits, hiding the binary
// noise of the interpolation (0.95×4 is 3.7999999999999998) that would
// otherwise print as 21.999999999999996. The estimate is far coarser than
// 12 digits anyway.
func roundSignificant(v float64) float64 {
	var buf [32]byte
	r, err := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], v, 'g', 12, 64)), 64)
	if err != nil {
		return v
	}
	return r
}

// appendFloat formats v as Envoy's fmt "{}" does for doubles: the shortest
// representation that round-trips, fixed notation for exponents in
// [-5, 16), "nan" and "inf" spelled out.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "nan"...)
	case math.IsInf(v, 1):
		return append(b, "inf"...)
	case math.IsInf(v, -1):
		return append(b, "-inf"...)
	}
	if a := math.Abs(v); a == 0 || (a >= 1e-5 && a < 1e16) {
		return strconv.AppendFloat(b, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, v, 'e', -1, 64)
}

// appendJSONFloat formats v as a JSON number, null for NaN and the
// infinities (Envoy's Json::Streamer::number does the same).
func appendJSONFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return appendFloat(b, v)
}

// appendJSONString appends s as a JSON string. Control characters are
// escaped and invalid UTF-8 becomes U+FFFD, so the output is always valid
// JSON whatever a stat name holds.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
