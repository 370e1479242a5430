package headers

// Protocol is the HTTP version a stream arrived with or leaves with.
type Protocol uint8

// Protocols, named as Envoy's %PROTOCOL% prints them.
const (
	HTTP10 Protocol = iota + 1
	HTTP11
	HTTP2
)

func (p Protocol) String() string {
	switch p {
	case HTTP10:
		return "HTTP/1.0"
	case HTTP11:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	}
	return "-"
}

// Pseudo-header names, as route matchers and format strings use them.
const (
	PseudoMethod    = ":method"
	PseudoScheme    = ":scheme"
	PseudoAuthority = ":authority"
	PseudoPath      = ":path"
	PseudoStatus    = ":status"
	PseudoProtocol  = ":protocol"
)

// Request is a request's header block. The pseudo-headers have their own
// fields (Authority holds the HTTP/1 Host header); Map holds the regular
// fields and never contains a field named "host".
type Request struct {
	Method    []byte
	Scheme    []byte // "http" or "https"
	Authority []byte
	Path      []byte // origin form, with the query; "*" for OPTIONS *
	Protocol  Protocol
	// UpgradeProto is the protocol being upgraded to (HTTP/1 Upgrade header
	// or HTTP/2 extended CONNECT :protocol), lower case; nil when none.
	UpgradeProto []byte
	Map
}

// Reset empties the request for reuse.
func (r *Request) Reset() {
	r.Method, r.Scheme, r.Authority, r.Path, r.UpgradeProto = nil, nil, nil, nil, nil
	r.Protocol = 0
	r.Map.Reset()
}

// Get returns a header value; pseudo-header names (":path", ...) and "host"
// read the dedicated fields.
func (r *Request) Get(name string) []byte {
	v, _ := r.Lookup(name)
	return v
}

// Lookup is Get that also says whether the header is present.
func (r *Request) Lookup(name string) ([]byte, bool) {
	if len(name) > 0 && name[0] == ':' || name == "host" {
		switch name {
		case PseudoMethod:
			return r.Method, r.Method != nil
		case PseudoScheme:
			return r.Scheme, r.Scheme != nil
		case PseudoAuthority, "host":
			return r.Authority, r.Authority != nil
		case PseudoPath:
			return r.Path, r.Path != nil
		case PseudoProtocol:
			return r.UpgradeProto, r.UpgradeProto != nil
		}
		return nil, false
	}
	return r.Map.Lookup(name)
}

// PathOnly returns Path without its query string.
func (r *Request) PathOnly() []byte {
	for i, c := range r.Path {
		if c == '?' || c == '#' {
			return r.Path[:i]
		}
	}
	return r.Path
}

// Query returns the query string of Path without '?', or nil.
func (r *Request) Query() []byte {
	for i, c := range r.Path {
		if c == '?' {
			q := r.Path[i+1:]
			for j, c := range q {
				if c == '#' {
					return q[:j]
				}
			}
			return q
		}
	}
	return nil
}

// Response is a response's header block.
type Response struct {
	Status int
	Map
}

// Reset empties the response for reuse.
func (r *Response) Reset() {
	r.Status = 0
	r.Map.Reset()
}

// Common header names, lower case.
const (
	Connection       = "connection"
	ContentLength    = "content-length"
	ContentType      = "content-type"
	TransferEncoding = "transfer-encoding"
	Upgrade          = "upgrade"
	KeepAlive        = "keep-alive"
	ProxyConnection  = "proxy-connection"
	TE               = "te"
	Trailer          = "trailer"
	Expect           = "expect"
	Host             = "host"
	Server           = "server"
	Location         = "location"
	XForwardedFor    = "x-forwarded-for"
	XForwardedProto  = "x-forwarded-proto"
	XForwardedHost   = "x-forwarded-host"
	XRequestID       = "x-request-id"
	XEnvoyOrigPath   = "x-envoy-original-path"
	XEnvoyExternal   = "x-envoy-external-address"
	XEnvoyInternal   = "x-envoy-internal"
	XEnvoyUpstreamST = "x-envoy-upstream-service-time"
	XEnvoyExpectedTO = "x-envoy-expected-rq-timeout-ms"
	GRPCTimeout      = "grpc-timeout"
	GRPCStatus       = "grpc-status"
	GRPCMessage      = "grpc-message"
	Cookie           = "cookie"
	SetCookie        = "set-cookie"
)
