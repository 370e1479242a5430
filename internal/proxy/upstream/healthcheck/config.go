// Package healthcheck is Envoy's active health checking of upstream hosts
// (cluster health_checks; architecture overview "Health checking",
// core.v3.HealthCheck): HTTP (HTTP/1.1 or HTTP/2), TCP (connect, optional
// send/receive payloads) and the gRPC health protocol
// (grpc.health.v1.Health/Check), with Envoy's healthy/unhealthy thresholds,
// intervals (no-traffic, unhealthy, edge intervals) and jitter.
//
// One Session per host runs on its own goroutine, off the request path,
// over connections of its own dialed through the host's transport socket
// (TLS when the host has one). A Session reports transitions through its
// Target; the cluster turns them into its healthy view.
package healthcheck

import (
	"encoding/hex"
	"fmt"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Kind is the health checker's protocol.
type Kind uint8

// Kinds.
const (
	HTTP Kind = iota
	TCP
	GRPC
)

// Config is one cluster's health check with Envoy's defaults applied.
type Config struct {
	Kind                  Kind
	Timeout               time.Duration
	Interval              time.Duration
	InitialJitter         time.Duration
	IntervalJitter        time.Duration
	IntervalJitterPercent uint32
	UnhealthyThreshold    uint32
	HealthyThreshold      uint32
	ReuseConnection       bool // default true
	// NoTrafficInterval (default 60 s) is used while the cluster has never
	// made a connection for traffic; NoTrafficHealthyInterval (default
	// NoTrafficInterval) for passing hosts then.
	NoTrafficInterval        time.Duration
	NoTrafficHealthyInterval time.Duration
	UnhealthyInterval        time.Duration // default Interval
	UnhealthyEdgeInterval    time.Duration // default UnhealthyInterval
	HealthyEdgeInterval      time.Duration // default Interval

	// HTTP and gRPC.
	Host    string // HTTP host / gRPC authority; default the cluster name
	Path    string
	HTTP2   bool // codec_client_type HTTP2 (gRPC is always HTTP/2)
	Headers [][2]string
	// Expected and Retriable are [start, end) status ranges; Expected
	// defaults to [200, 201).
	Expected  [][2]int64
	Retriable [][2]int64

	// TCP: Send is written after connecting; the check passes once every
	// Receive payload has arrived in order (Envoy's fuzzy match).
	Send    []byte
	Receive [][]byte

	// gRPC.
	ServiceName string
}

// ParseConfig reads a cluster's health_checks[i]. cluster is the
// cluster's name (the default HTTP host and gRPC authority). Errors name
// the field under health_checks[i].
func ParseConfig(hc *corev3.HealthCheck, cluster string) (*Config, error) {
	c := &Config{
		Timeout:               hc.GetTimeout().AsDuration(),
		Interval:              hc.GetInterval().AsDuration(),
		InitialJitter:         dur(hc.GetInitialJitter(), 0),
		IntervalJitter:        dur(hc.GetIntervalJitter(), 0),
		IntervalJitterPercent: hc.GetIntervalJitterPercent(),
		UnhealthyThreshold:    hc.GetUnhealthyThreshold().GetValue(),
		HealthyThreshold:      hc.GetHealthyThreshold().GetValue(),
		ReuseConnection:       hc.GetReuseConnection() == nil || hc.GetReuseConnection().GetValue(),
		NoTrafficInterval:     dur(hc.GetNoTrafficInterval(), 60*time.Second),
		Host:                  cluster,
	}
	c.NoTrafficHealthyInterval = dur(hc.GetNoTrafficHealthyInterval(), c.NoTrafficInterval)
	c.UnhealthyInterval = dur(hc.GetUnhealthyInterval(), c.Interval)
	c.UnhealthyEdgeInterval = dur(hc.GetUnhealthyEdgeInterval(), c.UnhealthyInterval)
	c.HealthyEdgeInterval = dur(hc.GetHealthyEdgeInterval(), c.Interval)
	switch {
	case c.Timeout <= 0:
		return nil, fmt.Errorf("timeout: required, greater than 0")
	case c.Interval <= 0:
		return nil, fmt.Errorf("interval: required, greater than 0")
	case hc.GetUnhealthyThreshold() == nil:
		return nil, fmt.Errorf("unhealthy_threshold: required")
	case hc.GetHealthyThreshold() == nil:
		return nil, fmt.Errorf("healthy_threshold: required")
	}
	var err error
	switch {
	case hc.GetHttpHealthCheck() != nil:
		err = c.parseHTTP(hc.GetHttpHealthCheck())
	case hc.GetTcpHealthCheck() != nil:
		err = c.parseTCP(hc.GetTcpHealthCheck())
	case hc.GetGrpcHealthCheck() != nil:
		g := hc.GetGrpcHealthCheck()
		c.Kind, c.HTTP2, c.ServiceName = GRPC, true, g.GetServiceName()
		if a := g.GetAuthority(); a != "" {
			c.Host = a
		}
		if len(g.GetInitialMetadata()) > 0 {
			err = fmt.Errorf("grpc_health_check.initial_metadata: not supported")
		}
	default:
		err = fmt.Errorf("health_checker: set http_health_check, tcp_health_check or grpc_health_check (custom_health_check is not supported)")
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) parseHTTP(h *corev3.HealthCheck_HttpHealthCheck) error {
	c.Kind = HTTP
	if h.GetPath() == "" {
		return fmt.Errorf("http_health_check.path: required")
	}
	c.Path = h.GetPath()
	if h.GetHost() != "" {
		c.Host = h.GetHost()
	}
	switch h.GetCodecClientType() {
	case typev3.CodecClientType_HTTP1:
	case typev3.CodecClientType_HTTP2:
		c.HTTP2 = true
	default:
		return fmt.Errorf("http_health_check.codec_client_type: %s is not supported (HTTP1, HTTP2)", h.GetCodecClientType())
	}
	for i, o := range h.GetRequestHeadersToAdd() {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		if k == "" || k[0] == ':' {
			return fmt.Errorf("http_health_check.request_headers_to_add[%d].header.key: %q cannot be added", i, k)
		}
		c.Headers = append(c.Headers, [2]string{k, v})
	}
	c.Expected = ranges(h.GetExpectedStatuses())
	if len(c.Expected) == 0 {
		c.Expected = [][2]int64{{200, 201}}
	}
	c.Retriable = ranges(h.GetRetriableStatuses())
	if len(h.GetRequestHeadersToRemove()) > 0 || h.GetSend() != nil || h.GetReceive() != nil {
		return fmt.Errorf("http_health_check: request_headers_to_remove, send and receive are not supported")
	}
	return nil
}

func (c *Config) parseTCP(t *corev3.HealthCheck_TcpHealthCheck) error {
	c.Kind = TCP
	var err error
	if t.GetSend() != nil {
		if c.Send, err = payload(t.GetSend()); err != nil {
			return fmt.Errorf("tcp_health_check.send.%w", err)
		}
	}
	for i, r := range t.GetReceive() {
		b, err := payload(r)
		if err != nil {
			return fmt.Errorf("tcp_health_check.receive[%d].%w", i, err)
		}
		c.Receive = append(c.Receive, b)
	}
	if t.GetProxyProtocolConfig() != nil {
		return fmt.Errorf("tcp_health_check.proxy_protocol_config: not supported")
	}
	return nil
}

func payload(p *corev3.HealthCheck_Payload) ([]byte, error) {
	if p.GetText() != "" {
		b, err := hex.DecodeString(p.GetText())
		if err != nil {
			return nil, fmt.Errorf("text: not hex: %v", err)
		}
		return b, nil
	}
	return p.GetBinary(), nil
}

func ranges(rs []*typev3.Int64Range) [][2]int64 {
	var out [][2]int64
	for _, r := range rs {
		out = append(out, [2]int64{r.GetStart(), r.GetEnd()})
	}
	return out
}

func inRanges(rs [][2]int64, status int) bool {
	for _, r := range rs {
		if int64(status) >= r[0] && int64(status) < r[1] {
			return true
		}
	}
	return false
}

func dur(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}
