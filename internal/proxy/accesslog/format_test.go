package accesslog

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/headers"
	"github.com/weftmesh/weft/internal/proxy/network"
	"github.com/weftmesh/weft/internal/proxy/streaminfo"
)

var testStart = time.Date(2026, 3, 7, 9, 5, 2, 123456789, time.UTC)

// httpEntry is a proxied request with every field set.
func httpEntry() *Entry {
	req := &headers.Request{Method: []byte("GET"), Path: []byte("/api?x=1"), Authority: []byte("svc.local"), Protocol: headers.HTTP11}
	req.Add("user-agent", "curl/8")
	req.Add("x-request-id", "rid-1")
	req.Add("x-forwarded-for", "10.1.1.1")
	resp := &headers.Response{Status: 201}
	resp.Add("x-envoy-upstream-service-time", "7")
	resp.Add("content-type", "text/plain")
	tr := &headers.Map{}
	tr.Add("grpc-status", "0")
	peer := &x509.Certificate{URIs: []*url.URL{{Scheme: "spiffe", Host: "cluster.local", Path: "/ns/default/sa/client"}}}
	return &Entry{
		Info: &streaminfo.Info{
			StartTime:                      testStart,
			Duration:                       25*time.Millisecond + 900*time.Microsecond,
			FirstUpstreamByte:              12 * time.Millisecond,
			LastDownstreamRxByte:           3 * time.Millisecond,
			Protocol:                       headers.HTTP11,
			ResponseCode:                   201,
			Flags:                          streaminfo.UpstreamRetryLimitExceeded | streaminfo.NoHealthyUpstream,
			BytesReceived:                  11,
			BytesSent:                      22,
			DownstreamRemote:               netip.MustParseAddrPort("10.0.0.1:5555"),
			DownstreamLocal:                netip.MustParseAddrPort("[::ffff:10.0.0.2]:8080"),
			RouteName:                      "default",
			UpstreamCluster:                "outbound|80||svc",
			UpstreamHost:                   "10.0.0.3:9080",
			UpstreamLocal:                  netip.MustParseAddrPort("10.0.0.2:40000"),
			UpstreamTransportFailureReason: "",
			UpstreamAttempts:               2,
		},
		Req: req, Resp: resp, Trailers: tr,
		Conn: &network.Conn{
			Remote:     netip.MustParseAddrPort("10.0.0.9:6000"),
			ServerName: "svc.example.com",
			TLS:        &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}},
			LocalURIs:  []string{"spiffe://cluster.local/ns/default/sa/server"},
		},
	}
}

func render(t *testing.T, format string, e *Entry) string {
	t.Helper()
	f, err := newTextFormatter(format, "host-1", false)
	if err != nil {
		t.Fatalf("%q: %v", format, err)
	}
	out, _ := f.AppendTo(nil, nil, e)
	return string(out)
}

func TestOperators(t *testing.T) {
	cases := []struct{ format, want string }{
		{"%START_TIME%", "2026-03-07T09:05:02.123Z"},
		{"%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%", "2026/03/07T09:05:02+0000 1772874302"},
		{"%START_TIME(%s.%3f)%", "1772874302.123"},
		{"%START_TIME(%s.%6f|%f|%E3S)%", "1772874302.123456|123456789|02.123"},
		{"%START_TIME(%a %b %e %j %y %T %F %%)%", "Sat Mar  7 066 26 09:05:02 2026-03-07 %"},
		{"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", "GET /api?x=1"},
		{"%REQ(:AUTHORITY)% %REQ(USER-AGENT)% %REQ(X-REQUEST-ID)%", "svc.local curl/8 rid-1"},
		{"%REQ(x-missing)%|%REQ(X-MISSING?USER-AGENT)%|%REQ(USER-AGENT):3%", "-|curl/8|cur"},
		{"%REQUEST_HEADER(:PATH)%", "/api?x=1"},
		{"%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% %RESPONSE_HEADER(content-type):4% %RESP(nope)%", "7 text -"},
		{"%TRAILER(GRPC-STATUS)% %RESPONSE_TRAILER(x?grpc-status)%", "0 0"},
		{"%RESPONSE_CODE% %RESPONSE_FLAGS%", "201 UH,URX"},
		{"%RESPONSE_CODE_DETAILS%", "via_upstream"},
		{"%CONNECTION_TERMINATION_DETAILS%", "-"},
		{"%BYTES_RECEIVED% %BYTES_SENT%", "11 22"},
		{"%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%", "25 3 12 13"},
		{"%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_CLUSTER_RAW%", "10.0.0.3:9080 outbound|80||svc outbound|80||svc"},
		{"%UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %UPSTREAM_LOCAL_PORT%", "10.0.0.2:40000 10.0.0.2 40000"},
		{"%UPSTREAM_REMOTE_ADDRESS% %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %UPSTREAM_REMOTE_PORT%", "10.0.0.3:9080 10.0.0.3 9080"},
		{"%UPSTREAM_TRANSPORT_FAILURE_REASON%", "-"},
		{"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_REMOTE_PORT%", "10.0.0.1:5555 10.0.0.1 5555"},
		{"%DOWNSTREAM_DIRECT_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", "10.0.0.9:6000 10.0.0.9"},
		{"%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT%", "10.0.0.2:8080 10.0.0.2 8080"},
		{"%DOWNSTREAM_PEER_URI_SAN%", "spiffe://cluster.local/ns/default/sa/client"},
		{"%DOWNSTREAM_LOCAL_URI_SAN%", "spiffe://cluster.local/ns/default/sa/server"},
		{"%PROTOCOL% %REQUESTED_SERVER_NAME% %ROUTE_NAME%", "HTTP/1.1 svc.example.com default"},
		{"%HOSTNAME% %UPSTREAM_REQUEST_ATTEMPT_COUNT%", "host-1 2"},
		{"100%% done\n", "100% done\n"},
	}
	e := httpEntry()
	for _, c := range cases {
		if got := render(t, c.format, e); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.format, got, c.want)
		}
	}
}

// TestOperatorsUnavailable: a TCP connection, or a stream that never
// reached an upstream, prints "-" where Envoy does.
func TestOperatorsUnavailable(t *testing.T) {
	tcp := &Entry{TCP: true, Info: &streaminfo.Info{
		StartTime: testStart, Duration: 40 * time.Millisecond, BytesReceived: 5, BytesSent: 6,
		UpstreamHost: "10.0.0.3:9000", UpstreamCluster: "db", UpstreamAttempts: 1,
	}}
	local := &Entry{Info: &streaminfo.Info{
		StartTime: testStart, Protocol: headers.HTTP2, ResponseCode: 404,
		Flags: streaminfo.NoRouteFound, Details: "route_not_found",
	}, Req: &headers.Request{Method: []byte("GET")}}
	cases := []struct {
		e            *Entry
		format, want string
	}{
		{tcp, "%PROTOCOL% %RESPONSE_CODE% %REQ(:METHOD)% %RESP(x)% %TRAILER(x)%", "- - - - -"},
		{tcp, "%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%", "- - -"},
		{tcp, "%DURATION% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST% %UPSTREAM_CLUSTER% %RESPONSE_FLAGS%", "40 5 6 10.0.0.3:9000 db -"},
		{tcp, "%DOWNSTREAM_PEER_URI_SAN% %REQUESTED_SERVER_NAME% %DOWNSTREAM_REMOTE_ADDRESS%", "- - -"},
		{local, "%PROTOCOL% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%", "HTTP/2 404 NR route_not_found"},
		{local, "%UPSTREAM_HOST% %UPSTREAM_LOCAL_ADDRESS% %UPSTREAM_REQUEST_ATTEMPT_COUNT% %RESPONSE_DURATION%", "- - 0 -"},
	}
	for _, c := range cases {
		if got := render(t, c.format, c.e); got != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.format, got, c.want)
		}
	}
}

func TestOmitEmptyText(t *testing.T) {
	f, err := newTextFormatter("[%REQ(x-none)%][%RESPONSE_CODE%]", "", true)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := f.AppendTo(nil, nil, httpEntry())
	if string(out) != "[][201]" {
		t.Errorf("got %q, want %q", out, "[][201]")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ format, want string }{
		{"%NOPE%", "command operator %NOPE% is not supported"},
		{"a % b", "position 2: no valid command"},
		{"%REQ%", "needs a header name"},
		{"%REQ(?x)%", "both header names are required"},
		{"%REQ(x", "unterminated '('"},
		{"%DURATION(x)%", "takes no arguments"},
		{"%REQ(x):0%", "invalid length"},
		{"%DURATION", "missing the closing '%'"},
		{"%START_TIME(%Q)%", "specifier %Q is not supported"},
		{"%UPSTREAM_SERVICE_TIME%", "not supported"},
	}
	for _, c := range cases {
		_, err := parseText(c.format, "")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one containing %q", c.format, err, c.want)
		}
	}
}

func TestAppendInt(t *testing.T) {
	cases := []struct {
		v, w int
		want string
	}{{0, 1, "0"}, {5, 2, "05"}, {123, 1, "123"}, {7, 3, "007"}, {2026, 4, "2026"}}
	for _, c := range cases {
		if got := string(appendInt(nil, c.v, c.w)); got != c.want {
			t.Errorf("appendInt(%d, %d) = %q, want %q", c.v, c.w, got, c.want)
		}
	}
}
