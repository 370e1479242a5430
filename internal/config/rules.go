package config

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// The value rules below follow Istio's pkg/config/validation (agent and
// labels packages): each returns "" for a valid value, or what is wrong.

var (
	// dns1123LabelRE is Istio's DNS label: it accepts upper case, as
	// Istio does (labels.IsDNS1123Label).
	dns1123LabelRE = regexp.MustCompile(`^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	// wildcardLabelRE is a DNS label with an optional leading "*" or "*-",
	// or "*" alone (labels.IsWildcardDNS1123Label).
	wildcardLabelRE = regexp.MustCompile(`^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$`)
	// k8sNameRE is a Kubernetes object name (DNS-1123 subdomain).
	k8sNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	// k8sNamespaceRE is a Kubernetes namespace name (DNS-1123 label).
	k8sNamespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// labelKeyRE is a Kubernetes label key: an optional DNS prefix and "/",
	// then a qualified name.
	labelKeyRE = regexp.MustCompile(`^(([a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)*)/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`)
	// labelValueRE is a Kubernetes label value (may be empty).
	labelValueRE = regexp.MustCompile(`^((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	// headerNameRE is Istio's valid HTTP header name for matching.
	headerNameRE = regexp.MustCompile(`^[-_A-Za-z0-9]+$`)
	// headerValueRE rejects the control characters Envoy refuses in a
	// header value (protoc-gen-validate's well-known HTTP header value).
	headerValueRE = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
)

// isDNSLabel reports whether s is a DNS label of at most 63 characters.
func isDNSLabel(s string) bool { return len(s) <= 63 && dns1123LabelRE.MatchString(s) }

// fqdnProblem checks a fully qualified domain name (agent.ValidateFQDN).
func fqdnProblem(fqdn string) string {
	if msg := dnsPreconditions(fqdn); msg != "" {
		return msg
	}
	return dnsLabelsProblem(fqdn)
}

// dnsPreconditions checks the length of a domain name.
func dnsPreconditions(name string) string {
	switch {
	case len(name) > 255:
		return fmt.Sprintf("domain name %q is too long (at most 255 characters)", truncate(name))
	case name == "":
		return "an empty domain name is not allowed"
	}
	return ""
}

// dnsLabelsProblem checks every label of a domain (a trailing dot is
// allowed; the top-level label may not be all digits).
func dnsLabelsProblem(domain string) string {
	parts := strings.Split(domain, ".")
	if tld := parts[len(parts)-1]; tld != "" {
		if _, err := strconv.Atoi(tld); err == nil {
			return fmt.Sprintf("domain name %q is invalid (the top-level domain %q cannot be all digits)", domain, tld)
		}
	}
	for i, label := range parts {
		if i == len(parts)-1 && label == "" {
			return ""
		}
		if !isDNSLabel(label) {
			return fmt.Sprintf("domain name %q is invalid (label %q is not a DNS label)", domain, label)
		}
	}
	return ""
}

// wildcardDomainProblem checks a domain that may start with a wildcard
// label ("*", "*.example.com", "*-x.example.com"), as
// agent.ValidateWildcardDomain does.
func wildcardDomainProblem(domain string) string {
	if msg := dnsPreconditions(domain); msg != "" {
		return msg
	}
	first, rest, hasRest := strings.Cut(domain, ".")
	if len(first) > 63 || !wildcardLabelRE.MatchString(first) {
		return fmt.Sprintf("domain name %q is invalid (label %q is not a DNS label)", domain, first)
	}
	if hasRest {
		return dnsLabelsProblem(rest)
	}
	return ""
}

// partialWildcardProblem rejects a wildcard that is not a whole leading
// label ("*.example.com" and "*" are fine, "a*.example.com" is not).
func partialWildcardProblem(host string) string {
	if strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.") {
		return fmt.Sprintf("partial wildcard %q is not allowed", host)
	}
	return ""
}

// portProblem checks a port number.
func portProblem(port uint32) string {
	if port >= 1 && port <= 65535 {
		return ""
	}
	return fmt.Sprintf("port number %d must be in the range 1..65535", port)
}

// durationProblem checks a duration the way Istio does
// (agent.ValidateDuration): at least 1ms, in whole milliseconds.
func durationProblem(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	if err := d.CheckValid(); err != nil {
		return "invalid duration: " + err.Error()
	}
	dur := d.AsDuration()
	if dur < time.Millisecond {
		return fmt.Sprintf("duration %s must be at least 1ms", dur)
	}
	if dur%time.Millisecond != 0 {
		return fmt.Sprintf("duration %s: only whole milliseconds are supported", dur)
	}
	return ""
}

// nonNegativeDurationProblem checks a duration that may be zero.
func nonNegativeDurationProblem(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	if err := d.CheckValid(); err != nil {
		return "invalid duration: " + err.Error()
	}
	if d.AsDuration() < 0 {
		return fmt.Sprintf("duration %s must not be negative", d.AsDuration())
	}
	return ""
}

// ipProblem checks an IP address.
func ipProblem(addr string) string {
	if _, err := netip.ParseAddr(addr); err != nil {
		return fmt.Sprintf("%q is not a valid IP address", addr)
	}
	return ""
}

// isIP reports whether s is an IP address.
func isIP(s string) bool { return ipProblem(s) == "" }

// subnetProblem checks an IP address or CIDR block (agent.ValidateIPSubnet).
func subnetProblem(subnet string) string {
	if strings.Count(subnet, "/") == 1 {
		if _, err := netip.ParsePrefix(subnet); err != nil {
			return fmt.Sprintf("%q is not a valid CIDR block", subnet)
		}
		return ""
	}
	return ipProblem(subnet)
}

// unixAddressProblem checks the path of a unix:// address.
func unixAddressProblem(addr string) string {
	switch {
	case addr == "":
		return "a unix domain socket address must not be empty"
	case strings.HasPrefix(addr, "@"):
		return "" // abstract socket
	case !path.IsAbs(addr) || strings.HasSuffix(addr, "/"):
		return fmt.Sprintf("%q is not an absolute path to a file", addr)
	}
	return ""
}

// labelsProblems checks a label map (labels.Instance.Validate), in key
// order, and reports each problem at the key.
func labelsProblems(is *issues, p fieldPath, labels map[string]string) {
	for _, k := range sortedKeys(labels) {
		if msg := labelKeyProblem(k); msg != "" {
			is.err(p.k(k), msg)
		}
		if v := labels[k]; len(v) > 63 || !labelValueRE.MatchString(v) {
			is.err(p.k(k), fmt.Sprintf("invalid label value %q: at most 63 characters, alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric", v))
		}
	}
}

// labelKeyProblem checks a Kubernetes label key.
func labelKeyProblem(k string) string {
	m := labelKeyRE.FindStringSubmatch(k)
	switch {
	case m == nil:
		return fmt.Sprintf("invalid label key %q", k)
	case len(m[2]) > 253:
		return fmt.Sprintf("invalid label key %q: the DNS prefix is too long", k)
	case len(m[3]) > 63:
		return fmt.Sprintf("invalid label key %q: the name is too long (at most 63 characters)", k)
	}
	return ""
}

// selectorProblems checks workload selector labels: no empty keys, no
// wildcards (ValidateAlphaWorkloadSelector); an empty selector is a
// warning, as it selects every workload of the namespace.
func selectorProblems(is *issues, p fieldPath, labels map[string]string) {
	if len(labels) == 0 {
		is.warn(p, "workload selector without labels: it applies to every workload in the namespace")
		return
	}
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		if k == "" {
			is.err(p.k(k), fmt.Sprintf("an empty key is not supported in a selector: %q", k+"="+v))
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			is.err(p.k(k), fmt.Sprintf("a wildcard is not supported in a selector: %q", k+"="+v))
		}
	}
}

// headerNameProblem checks a header name used in a match.
func headerNameProblem(name string) string {
	switch {
	case name == "":
		return "a header name cannot be empty"
	case !headerNameRE.MatchString(name):
		return fmt.Sprintf("%q is not a valid header name", name)
	}
	return ""
}

// headerValueProblem checks a header value Envoy will format: no control
// characters, and every '%' either doubled or opening a %COMMAND% pair
// (Envoy's custom header substitution format).
func headerValueProblem(value string) string {
	if !headerValueRE.MatchString(value) {
		return fmt.Sprintf("header value %q contains control characters", value)
	}
	for i := 0; i < len(value); i++ {
		if value[i] != '%' {
			continue
		}
		if i+1 < len(value) && value[i+1] == '%' {
			i++
			continue
		}
		end := strings.IndexByte(value[i+1:], '%')
		if end <= 0 || value[i+1] < 'A' || value[i+1] > 'Z' {
			return fmt.Sprintf("header value %q: a '%%' must be written %%%% or open a %%COMMAND%% such as %%HOSTNAME%%", value)
		}
		i += end + 1
	}
	return ""
}

// portNameProblem checks a port name (a DNS label).
func portNameProblem(name string) string {
	if !isDNSLabel(name) {
		return fmt.Sprintf("invalid port name %q: it must be a DNS label", name)
	}
	return ""
}

// protocols are the port protocols Istio knows (protocol.Parse), upper
// case.
var protocols = map[string]bool{
	"TCP": true, "UDP": true, "GRPC": true, "GRPC-WEB": true, "HTTP": true, "HTTP_PROXY": true,
	"HTTP2": true, "HTTPS": true, "TLS": true, "MONGO": true, "REDIS": true, "MYSQL": true,
}

// protocolProblem checks a port protocol; "" is protocol sniffing.
func protocolProblem(p string) string {
	if p == "" || protocols[strings.ToUpper(p)] {
		return ""
	}
	return fmt.Sprintf("unsupported protocol %q (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS, MYSQL)", p)
}

// protocolIsHTTP reports whether a protocol carries HTTP.
func protocolIsHTTP(p string) bool {
	switch strings.ToUpper(p) {
	case "HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB":
		return true
	}
	return false
}

// protocolIsTLS reports whether a protocol runs over TLS.
func protocolIsTLS(p string) bool {
	switch strings.ToUpper(p) {
	case "HTTPS", "TLS":
		return true
	}
	return false
}

// exportToProblems checks exportTo (validateExportTo): namespaces, "." or
// "*" (and "~" for a ServiceEntry), no duplicates, "*" alone.
func exportToProblems(is *issues, p fieldPath, namespace string, exportTo []string, serviceEntry bool) {
	seen := map[string]bool{}
	for i, e := range exportTo {
		key := e
		if e == "." {
			key = namespace
		}
		switch {
		case seen[key]:
			is.err(p.i(i), fmt.Sprintf("duplicate entry %q in exportTo", e))
		case e == "~" && !serviceEntry:
			is.err(p.i(i), `"~" (visible to no one) is only allowed in a ServiceEntry`)
		case e != "." && e != "*" && e != "~" && !isDNSLabel(e):
			is.err(p.i(i), fmt.Sprintf("%q is not a namespace, \".\" or \"*\"", e))
		}
		seen[key] = true
	}
	if len(exportTo) > 1 && seen["*"] {
		is.err(p, `exportTo cannot combine "*" (public) with other entries`)
	}
	if len(exportTo) > 1 && seen["~"] {
		is.err(p, `exportTo cannot combine "~" (no one) with other entries`)
	}
}

// sortedKeys returns a map's keys in order, for deterministic messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// truncate shortens a value quoted in a message.
func truncate(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}
