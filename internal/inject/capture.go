package inject

import (
	"fmt"
	"strconv"

	"github.com/weftmesh/weft/internal/capture"
)

// Istio's traffic.sidecar.istio.io annotations, read into `weft iptables`
// flags as Istio's injector turns them into istio-iptables flags.
const (
	AnnotationIncludeInboundPorts     = "traffic.sidecar.istio.io/includeInboundPorts"
	AnnotationExcludeInboundPorts     = "traffic.sidecar.istio.io/excludeInboundPorts"
	AnnotationIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges"
	AnnotationExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges"
	AnnotationIncludeOutboundPorts    = "traffic.sidecar.istio.io/includeOutboundPorts"
	AnnotationExcludeOutboundPorts    = "traffic.sidecar.istio.io/excludeOutboundPorts"
)

// sidecarInboundPorts are never captured inbound: the proxy's metrics,
// readiness and the agent's status port (Istio's -d 15090,15021,15020).
var sidecarInboundPorts = "15090,15021,15020"

type captureFlag struct {
	annotation, flag, def string
	cidr                  bool
	// extend: the annotation's ports are added to def rather than
	// replacing it.
	extend bool
}

var captureFlags = []captureFlag{
	{AnnotationIncludeInboundPorts, "--inbound-ports", "*", false, false},
	{AnnotationExcludeInboundPorts, "--exclude-inbound-ports", sidecarInboundPorts, false, true},
	{AnnotationIncludeOutboundIPRanges, "--outbound-ip-ranges", "*", true, false},
	{AnnotationExcludeOutboundIPRanges, "--exclude-outbound-ip-ranges", "", true, false},
	{AnnotationIncludeOutboundPorts, "--include-outbound-ports", "", false, false},
	{AnnotationExcludeOutboundPorts, "--exclude-outbound-ports", "", false, false},
}

// captureArgs builds the init container's flags from the pod's
// annotations. Values are checked here, with the parsers `weft iptables`
// uses, so that a bad annotation fails the pod's creation with a message
// naming it rather than crash-looping the init container.
func captureArgs(annotations map[string]string, uid int64) ([]string, error) {
	id := strconv.FormatInt(uid, 10)
	args := []string{
		"--proxy-port", strconv.Itoa(outboundPort),
		"--inbound-capture-port", strconv.Itoa(inboundPort),
		"--proxy-uid", id,
		"--proxy-gid", id,
	}
	for _, f := range captureFlags {
		v, set := annotations[f.annotation]
		if set {
			var err error
			if f.cidr {
				_, _, err = capture.ParseCIDRs(v)
			} else {
				_, _, err = capture.ParsePorts(v)
			}
			if err != nil {
				return nil, fmt.Errorf("metadata.annotations[%s]: %w", f.annotation, err)
			}
		}
		switch {
		case !set || (f.extend && v == ""):
			v = f.def
		case f.extend:
			v = f.def + "," + v
		}
		// An annotation set to "" is passed on: --inbound-ports "" means
		// no inbound capture.
		if set || v != "" {
			args = append(args, f.flag, v)
		}
	}
	return args, nil
}
