package stats

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// AppendPrometheus appends Envoy's GET /stats/prometheus rendering of ms to
// b, in the Prometheus text exposition format 0.0.4. As Envoy's
// PrometheusStatsFormatter does, it prints counters, then gauges, then
// histograms; within each kind one family per PromName in name order,
// introduced by "# TYPE <name> <kind>" and followed by a blank line, with
// the family's series in dotted-name order:
//
//	# TYPE envoy_cluster_upstream_rq_total counter
//	envoy_cluster_upstream_rq_total{envoy_cluster_name="backend"} 7
//
// Series without tags print "{}", as Envoy does. Histograms print
// cumulative _bucket{le="..."} lines for every bound and +Inf, then _sum
// and _count. Label names are sanitized to [a-zA-Z0-9_]; label values
// escape backslash, double quote and newline. Only o.Filter and
// o.UsedOnly apply.
//
// Sums print in the shortest form that round-trips, where Envoy prints 32
// significant digits; both parse to the same value.
func AppendPrometheus(b []byte, ms []*Metric, o RenderOptions) []byte {
	for _, k := range [...]Kind{KindCounter, KindGauge, KindHistogram} {
		b = appendPromKind(b, ms, k, o)
	}
	return b
}

func appendPromKind(b []byte, ms []*Metric, kind Kind, o RenderOptions) []byte {
	families := make(map[string][]*Metric)
	for _, m := range ms {
		if m.Kind == kind && o.shown(m) {
			families[m.PromName] = append(families[m.PromName], m)
		}
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		series := families[name]
		sortMetrics(series)
		b = append(b, "# TYPE "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, promType(kind)...)
		b = append(b, '\n')
		for _, m := range series {
			if kind == KindHistogram {
				b = appendPromHistogram(b, name, m)
				continue
			}
			b = append(b, name...)
			b = appendPromLabels(b, m.Tags, "")
			b = append(b, ' ')
			b = strconv.AppendInt(b, m.Value(), 10)
			b = append(b, '\n')
		}
		b = append(b, '\n')
	}
	return b
}

func promType(k Kind) string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	}
	return "histogram"
}

func appendPromHistogram(b []byte, name string, m *Metric) []byte {
	if m.histogram == nil {
		return b
	}
	s := m.histogram.Snapshot()
	for i, bound := range s.Bounds {
		var c uint64
		if i < len(s.Cumulative) {
			c = s.Cumulative[i]
		}
		b = append(b, name...)
		b = append(b, "_bucket"...)
		b = appendPromLabels(b, m.Tags, strconv.FormatFloat(bound, 'f', -1, 64))
		b = append(b, ' ')
		b = strconv.AppendUint(b, c, 10)
		b = append(b, '\n')
	}
	b = append(b, name...)
	b = append(b, "_bucket"...)
	b = appendPromLabels(b, m.Tags, "+Inf")
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.Count, 10)
	b = append(b, '\n')

	b = append(b, name...)
	b = append(b, "_sum"...)
	b = appendPromLabels(b, m.Tags, "")
	b = append(b, ' ')
	b = appendPromFloat(b, s.Sum)
	b = append(b, '\n')

	b = append(b, name...)
	b = append(b, "_count"...)
	b = appendPromLabels(b, m.Tags, "")
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.Count, 10)
	return append(b, '\n')
}

// appendPromLabels appends {name="value",...}, with le="<le>" last when le
// is not empty.
func appendPromLabels(b []byte, tags []Tag, le string) []byte {
	b = append(b, '{')
	for i, t := range tags {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, sanitize(t.Name)...)
		b = append(b, `="`...)
		b = appendPromLabelValue(b, t.Value)
		b = append(b, '"')
	}
	if le != "" {
		if len(tags) > 0 {
			b = append(b, ',')
		}
		b = append(b, `le="`...)
		b = append(b, le...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendPromLabelValue escapes a label value as the exposition format (and
// Envoy's sanitizeValue) requires: \ → \\, " → \", newline → \n.
func appendPromLabelValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\\\"\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendPromFloat formats a sample value: shortest round-trip form, with
// the exposition format's NaN, +Inf and -Inf spellings.
func appendPromFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
