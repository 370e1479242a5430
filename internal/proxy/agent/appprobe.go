package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// AppProbersEnv is the variable through which the injector hands the app
// containers' original probes to the agent (Istio's KubeAppProberEnvName):
// a JSON object from a status-port path to an AppProbe, for example
//
//	{"/app-health/web/livez":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":3}}
//
// The format is Istio's (pilot/cmd/pilot-agent/status KubeAppProbers and
// Prober, whose actions are Kubernetes' HTTPGetAction, TCPSocketAction
// and GRPCAction), so the environment of an Istio-injected pod works too.
const AppProbersEnv = "ISTIO_KUBE_APP_PROBERS"

// AppProbers maps a status-port path (/app-health/CONTAINER/livez|readyz|
// startupz, or Istio's /app-lifecycle/CONTAINER/prestopz|poststartz) to
// the probe the agent runs against the app when the kubelet asks for it.
type AppProbers map[string]*AppProbe

// AppProbe is one original probe: exactly one of HTTPGet, TCPSocket and
// GRPC, and the probe's timeoutSeconds (0: Kubernetes' default, 1 s).
// These mirror the Kubernetes types field for field, so that the agent
// (and weft-proxy) need no Kubernetes dependency.
type AppProbe struct {
	HTTPGet        *HTTPGetProbe   `json:"httpGet,omitempty"`
	TCPSocket      *TCPSocketProbe `json:"tcpSocket,omitempty"`
	GRPC           *GRPCProbe      `json:"grpc,omitempty"`
	TimeoutSeconds int32           `json:"timeoutSeconds,omitempty"`
}

// HTTPGetProbe is Kubernetes' HTTPGetAction with its port resolved to a
// number. An empty Host means the pod IP; an empty Scheme means HTTP.
type HTTPGetProbe struct {
	Path        string        `json:"path,omitempty"`
	Port        ProbePort     `json:"port"`
	Host        string        `json:"host,omitempty"`
	Scheme      string        `json:"scheme,omitempty"`
	HTTPHeaders []ProbeHeader `json:"httpHeaders,omitempty"`
}

// ProbeHeader is one header of an HTTP probe.
type ProbeHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// TCPSocketProbe is Kubernetes' TCPSocketAction with its port resolved.
type TCPSocketProbe struct {
	Port ProbePort `json:"port"`
	Host string    `json:"host,omitempty"`
}

// GRPCProbe is Kubernetes' GRPCAction: the grpc.health.v1 Check of
// Service (nil or "": the server's overall health) on Port; Mode "TLS"
// connects with TLS without verifying the certificate, anything else in
// plain text.
type GRPCProbe struct {
	Port    int32   `json:"port"`
	Service *string `json:"service"`
	Mode    *string `json:"mode,omitempty"`
}

// ProbePort is a probe's port: a JSON number. Kubernetes allows a port
// name there, but the injector resolves names against the container's
// ports, so a name in the variable is refused, as Istio's agent does.
type ProbePort int32

// UnmarshalJSON accepts a number only.
func (p *ProbePort) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return fmt.Errorf("port %s: a named port; the injector resolves names, want a number", b)
	}
	var n int32
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("port %s: want a number from 1 to 65535", b)
	}
	*p = ProbePort(n)
	return nil
}

// appProbePath is Istio's appProberPattern: the paths an injector may
// hand to the agent.
var appProbePath = regexp.MustCompile(`^/(app-health|app-lifecycle)/[^/]+/(livez|readyz|startupz|prestopz|poststartz)$`)

// ParseAppProbers decodes and checks the value of ISTIO_KUBE_APP_PROBERS
// ("" gives none). Errors name the variable, and either the position of
// the syntax error or the path and field at fault, so that a sidecar
// with a broken variable fails at start with a message saying where.
func ParseAppProbers(s string) (AppProbers, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", AppProbersEnv, positioned(s, err))
	}
	out := make(AppProbers, len(raw))
	paths := make([]string, 0, len(raw))
	for path := range raw {
		paths = append(paths, path)
	}
	sort.Strings(paths) // the first error is the same at every start
	for _, path := range paths {
		p, err := parseAppProbe(path, raw[path])
		if err != nil {
			return nil, fmt.Errorf("%s[%q]: %w", AppProbersEnv, path, err)
		}
		out[path] = p
	}
	return out, nil
}

// positioned adds the line and column to a JSON syntax or type error.
func positioned(s string, err error) error {
	var off int64
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	default:
		return err
	}
	// Offset counts the bytes read when the error was found: the byte at
	// fault is the last of them.
	read := s[:min(int(off), len(s))]
	line := 1 + strings.Count(read, "\n")
	col := len(read) - 1 - strings.LastIndexByte(read, '\n')
	return fmt.Errorf("invalid JSON at byte %d (line %d, column %d): %w", off, line, col, err)
}

func parseAppProbe(path string, raw json.RawMessage) (*AppProbe, error) {
	if !appProbePath.MatchString(path) {
		return nil, fmt.Errorf("path must match %s", appProbePath)
	}
	var p AppProbe
	if err := json.Unmarshal(raw, &p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("field %s: %w", te.Field, err)
		}
		return nil, err
	}
	return &p, p.check()
}

// check is Istio's validateAppKubeProber plus the ranges the kubelet
// enforces.
func (p *AppProbe) check() error {
	n := 0
	for _, set := range []bool{p.HTTPGet != nil, p.TCPSocket != nil, p.GRPC != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("want exactly one of httpGet, tcpSocket and grpc")
	}
	if p.TimeoutSeconds < 0 {
		return fmt.Errorf("timeoutSeconds %d: must be 0 (1 s) or more", p.TimeoutSeconds)
	}
	switch {
	case p.HTTPGet != nil:
		switch strings.ToUpper(p.HTTPGet.Scheme) {
		case "", "HTTP", "HTTPS":
		default:
			return fmt.Errorf("httpGet.scheme %q: want HTTP or HTTPS", p.HTTPGet.Scheme)
		}
		return checkPort("httpGet.port", int32(p.HTTPGet.Port))
	case p.TCPSocket != nil:
		return checkPort("tcpSocket.port", int32(p.TCPSocket.Port))
	default:
		return checkPort("grpc.port", p.GRPC.Port)
	}
}

func checkPort(field string, port int32) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%s %d: want a port from 1 to 65535", field, port)
	}
	return nil
}
