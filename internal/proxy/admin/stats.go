package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"

	"github.com/weftmesh/weft/internal/proxy/stats"
)

var statsParams = []param{
	{"usedonly", "Only include stats that have been written by system since restart"},
	{"filter", "Regular expression (Go regexp, RE2 syntax) for filtering stats"},
	{"format", "Format to use; One of (text, json, prometheus)"},
	{"type", "Stat types to include; One of (All, Counters, Histograms, Gauges, TextReadouts)"},
	{"histogram_buckets", "Histogram bucket display mode; One of (cumulative, disjoint, none)"},
	{"pretty", "Indent format=json output"},
}

var promParams = []param{
	{"usedonly", "Only include stats that have been written by system since restart"},
	{"filter", "Regular expression (Go regexp, RE2 syntax) for filtering stats"},
	{"histogram_buckets", "Histogram bucket display mode; One of (cumulative)"},
}

// first returns the first value of key, "" when absent or empty (Envoy's
// Utility::queryParam treats an empty value as absent).
func first(q url.Values, key string) string {
	if v := q[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseCommon reads usedonly and filter, shared by /stats and
// /stats/prometheus (Envoy's StatsParams::parse).
func parseCommon(q url.Values, o *stats.RenderOptions) *response {
	o.UsedOnly = q.Has("usedonly")
	if q.Has("filter") {
		re, err := regexp.Compile(first(q, "filter"))
		if err != nil {
			return text(http.StatusBadRequest, "Invalid re2 regex")
		}
		o.Filter = re
	}
	return nil
}

// statsQuery is /stats' parsed query.
type statsQuery struct {
	opts         stats.RenderOptions
	format       string // "text", "json" or "prometheus"
	textReadouts bool   // type=TextReadouts: weft has none, so nothing shows
	pretty       bool
}

// parseStatsQuery follows Envoy's StatsParams::parse, with its 400
// messages. Envoy's html and active-html formats are not served.
func parseStatsQuery(q url.Values) (statsQuery, *response) {
	var sq statsQuery
	if resp := parseCommon(q, &sq.opts); resp != nil {
		return sq, resp
	}
	switch first(q, "histogram_buckets") {
	case "", "none":
	case "cumulative":
		sq.opts.Histograms = stats.HistogramCumulative
	case "disjoint":
		sq.opts.Histograms = stats.HistogramDisjoint
	default:
		return sq, text(http.StatusBadRequest, "usage: /stats?histogram_buckets=(cumulative|disjoint|none)\n")
	}
	if q.Has("type") {
		switch q.Get("type") {
		case "All":
		case "Counters":
			sq.opts.Type = stats.TypeCounters
		case "Gauges":
			sq.opts.Type = stats.TypeGauges
		case "Histograms":
			sq.opts.Type = stats.TypeHistograms
		case "TextReadouts":
			sq.textReadouts = true
		default:
			return sq, text(http.StatusBadRequest, "invalid &type= param")
		}
	}
	switch f := first(q, "format"); f {
	case "", "text":
		sq.format = "text"
	case "json", "prometheus":
		sq.format = f
	default:
		return sq, text(http.StatusBadRequest, "usage: /stats?format=(json|prometheus|text)\n\n")
	}
	sq.pretty = q.Has("pretty")
	return sq, nil
}

// handleStats serves GET /stats in Envoy's text, json or prometheus form.
func (a *Admin) handleStats(q url.Values) *response {
	sq, resp := parseStatsQuery(q)
	if resp != nil {
		return resp
	}
	ms := a.opts.Stats.Snapshot()
	if sq.textReadouts {
		ms = nil
	}
	switch sq.format {
	case "prometheus":
		return plain(http.StatusOK, stats.AppendPrometheus(nil, ms, sq.opts))
	case "json":
		body := stats.AppendJSON(nil, ms, sq.opts)
		if sq.pretty {
			var buf bytes.Buffer
			// AppendJSON's output is valid JSON, so Indent cannot fail.
			_ = json.Indent(&buf, body, "", "  ")
			body = append(buf.Bytes(), '\n')
		}
		return &response{code: http.StatusOK, contentType: contentJSON, body: body}
	}
	return plain(http.StatusOK, stats.AppendText(nil, ms, sq.opts))
}

// handlePrometheus serves GET /stats/prometheus. Histograms are always
// cumulative buckets; Envoy's histogram_buckets=summary is refused.
func (a *Admin) handlePrometheus(q url.Values) *response {
	var o stats.RenderOptions
	if resp := parseCommon(q, &o); resp != nil {
		return resp
	}
	switch first(q, "histogram_buckets") {
	case "", "cumulative":
	default:
		return text(http.StatusBadRequest, "usage: /stats/prometheus?histogram_buckets=cumulative (weft renders Prometheus histograms as cumulative buckets only)\n")
	}
	return plain(http.StatusOK, stats.AppendPrometheus(nil, a.opts.Stats.Snapshot(), o))
}
