package config

import (
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/types/dynamicpb"
)

// envNameRE is a portable environment variable name (POSIX: letters,
// digits and underscores, not starting with a digit).
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// workloadEnv are the variables weft up sets for every workload; a
// Workload's env may not set them (PORT_<NAME> included).
var workloadEnv = []string{"PORT", "WEFT_PROXY", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
	"POD_NAME", "POD_NAMESPACE", "SERVICE_NAME", "INSTANCE_IP", "SERVICE_ACCOUNT"}

// validateWorkload checks a Workload (weft up's local manifest): a
// command, a service name (a DNS label) when there are ports, ports with
// unique names and numbers and a protocol Istio knows, labels, the
// service account, replicas and the environment.
func validateWorkload(m *dynamicpb.Message, is *issues) {
	s := readWorkload(m)
	if len(s.Command) == 0 || s.Command[0] == "" {
		is.err(specPath.f("command"), `command is required: the program and its arguments, e.g. ["weft", "demo-app", "reviews"] ("weft" runs this weft binary)`)
	}
	switch {
	case s.Service == "" && len(s.Ports) > 0:
		is.err(specPath.f("service"), "service is required when the workload has ports: it names the host SERVICE.NAMESPACE.svc.cluster.local")
	case s.Service != "" && (len(s.Service) > 63 || !k8sNamespaceRE.MatchString(s.Service)):
		is.err(specPath.f("service"), fmt.Sprintf("invalid service name %q: lower case alphanumerics and '-', starting and ending with an alphanumeric, at most 63 characters", s.Service))
	case s.Service != "" && len(s.Ports) == 0:
		is.warn(specPath.f("ports"), fmt.Sprintf("no ports: service %q gets no ServiceEntry (the workload only makes calls)", s.Service))
	}
	validateWorkloadPorts(s.Ports, is)
	labelsProblems(is, specPath.f("labels"), s.Labels)
	if !k8sNameRE.MatchString(s.ServiceAccount) || len(s.ServiceAccount) > 253 {
		is.err(specPath.f("serviceAccount"), fmt.Sprintf("invalid service account %q: lower case alphanumerics, '-' and '.', starting and ending with an alphanumeric", s.ServiceAccount))
	}
	if s.Replicas > MaxReplicas {
		is.err(specPath.f("replicas"), fmt.Sprintf("replicas %d: at most %d (each replica takes a loopback address)", s.Replicas, MaxReplicas))
	}
	for _, k := range sortedKeys(s.Env) {
		p := specPath.f("env").k(k)
		switch {
		case !envNameRE.MatchString(k):
			is.err(p, fmt.Sprintf("invalid environment variable name %q: letters, digits and '_', not starting with a digit", k))
		case contains(workloadEnv, k) || strings.HasPrefix(k, "PORT_"):
			is.err(p, fmt.Sprintf("%s is set by weft up (PORT, PORT_<NAME>, WEFT_PROXY, HTTP_PROXY, POD_NAME, POD_NAMESPACE, SERVICE_NAME, ...): remove it from env", k))
		}
	}
}

// validateWorkloadPorts checks a Workload's ports: unique names (DNS
// labels) and numbers, protocols Istio knows and a sidecar proxies (not
// UDP).
func validateWorkloadPorts(ports []WorkloadPort, is *issues) {
	names := map[string]bool{}
	numbers := map[uint32]bool{}
	for i, port := range ports {
		p := specPath.f("ports").i(i)
		switch {
		case port.Name == "":
			is.err(p.f("name"), "name is required (for example http or grpc): the app reads its port from PORT_<NAME>")
		case names[port.Name]:
			is.err(p.f("name"), fmt.Sprintf("port name %q is already defined", port.Name))
		default:
			is.check(p.f("name"), portNameProblem(port.Name))
		}
		names[port.Name] = true
		if numbers[port.Number] {
			is.err(p.f("number"), fmt.Sprintf("port %d is already defined", port.Number))
		}
		numbers[port.Number] = true
		is.check(p.f("number"), portProblem(port.Number))
		is.check(p.f("protocol"), protocolProblem(port.Protocol))
		if strings.EqualFold(port.Protocol, "UDP") {
			is.err(p.f("protocol"), "UDP is not proxied by weft-proxy: use TCP, HTTP, HTTP2 or GRPC")
		}
	}
}
