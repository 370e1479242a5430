package stats

import "strconv"

// quantilePercents are supportedQuantiles times 100, written out so the
// JSON shows 99.5 rather than a float product's rounding noise.
const quantilePercents = "[0,25,50,75,90,95,99,99.5,99.9,100]"

// AppendJSON appends Envoy's GET /stats?format=json rendering of ms to b:
//
//	{"stats":[{"name":"a.b","value":1}, ...,
//	  {"histograms":{"supported_quantiles":[0,25,...,100],
//	    "computed_quantiles":[{"name":"h","values":[{"cumulative":c,"interval":i}, ...]}]}}]}
//
// Counters and gauges come first in the order given, then one entry holding
// every histogram, present only when a histogram is shown. Quantiles that
// do not exist (no observations) are null, as Envoy prints NaN. With
// HistogramCumulative or HistogramDisjoint the histogram entry is Envoy's
// bucket form: {"histograms":[{"name":"h","buckets":[{"upper_bound":0.5,
// "interval":n,"cumulative":n}, ...]}]}. Interval values repeat the
// cumulative ones (weft keeps no flush interval). The output is compact;
// callers indent it if asked to.
func AppendJSON(b []byte, ms []*Metric, o RenderOptions) []byte {
	b = append(b, `{"stats":[`...)
	first := true
	for _, m := range ms {
		if m.Kind == KindHistogram || !o.wantKind(m.Kind) || !o.shown(m) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"name":`...)
		b = appendJSONString(b, m.Name)
		b = append(b, `,"value":`...)
		b = strconv.AppendInt(b, m.Value(), 10)
		b = append(b, '}')
	}
	hists := shownHistograms(ms, o)
	if len(hists) > 0 {
		if !first {
			b = append(b, ',')
		}
		if o.Histograms == HistogramQuantiles {
			b = appendJSONQuantiles(b, hists)
		} else {
			b = appendJSONBuckets(b, hists, o.Histograms)
		}
	}
	return append(b, "]}"...)
}

func shownHistograms(ms []*Metric, o RenderOptions) []*Metric {
	if !o.wantKind(KindHistogram) {
		return nil
	}
	var out []*Metric
	for _, m := range ms {
		if m.Kind == KindHistogram && m.histogram != nil && o.shown(m) {
			out = append(out, m)
		}
	}
	return out
}

func appendJSONQuantiles(b []byte, hists []*Metric) []byte {
	b = append(b, `{"histograms":{"supported_quantiles":`...)
	b = append(b, quantilePercents...)
	b = append(b, `,"computed_quantiles":[`...)
	for i, m := range hists {
		if i > 0 {
			b = append(b, ',')
		}
		s := m.histogram.Snapshot()
		b = append(b, `{"name":`...)
		b = appendJSONString(b, m.Name)
		b = append(b, `,"values":[`...)
		for j, q := range supportedQuantiles() {
			if j > 0 {
				b = append(b, ',')
			}
			v := quantile(&s, q)
			b = append(b, `{"cumulative":`...)
			b = appendJSONFloat(b, v)
			b = append(b, `,"interval":`...)
			b = appendJSONFloat(b, v)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}}"...)
}

func appendJSONBuckets(b []byte, hists []*Metric, mode HistogramMode) []byte {
	b = append(b, `{"histograms":[`...)
	for i, m := range hists {
		if i > 0 {
			b = append(b, ',')
		}
		s := m.histogram.Snapshot()
		counts := bucketCounts(&s, mode)
		b = append(b, `{"name":`...)
		b = appendJSONString(b, m.Name)
		b = append(b, `,"buckets":[`...)
		for j, bound := range s.Bounds {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"upper_bound":`...)
			b = appendJSONFloat(b, bound)
			b = append(b, `,"interval":`...)
			b = strconv.AppendUint(b, counts[j], 10)
			b = append(b, `,"cumulative":`...)
			b = strconv.AppendUint(b, counts[j], 10)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}
