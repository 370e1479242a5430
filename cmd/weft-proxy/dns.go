package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/weftmesh/weft/internal/proxy/agent"
	"github.com/weftmesh/weft/internal/proxy/dnsproxy"
)

// dnsAuto is --dns-address's default: the workload IP with Istio's DNS
// proxy port 15053 (127.0.0.1:15053 for the default --ip, Istio's address),
// so that sidecars on 127.0.0.2, 127.0.0.3, ... of one machine do not
// collide.
const dnsAuto = "auto"

// checkDNS resolves --dns-address's default and checks it. A gateway
// (--type router) has no DNS proxy by default: it serves traffic from
// outside, as Istio's gateways run without DNS capture.
func (o *sidecarOptions) checkDNS() error {
	if o.dnsAddress == dnsAuto {
		o.dnsAddress = net.JoinHostPort(o.ip, "15053")
		if o.proxyType == "router" {
			o.dnsAddress = ""
		}
	}
	if o.dnsAddress == "" {
		return nil
	}
	if _, err := netip.ParseAddrPort(o.dnsAddress); err != nil {
		return fmt.Errorf("--dns-address %q: want ip:port, or empty for no DNS proxy", o.dnsAddress)
	}
	if o.dnsResolvConf == "" {
		return fmt.Errorf("--dns-resolv-conf is empty: name the resolv.conf of the upstream resolvers, or turn the DNS proxy off with --dns-address=")
	}
	return nil
}

// startDNS starts the agent's DNS proxy and its name-table subscription.
// A DNS address that cannot be bound is fatal, as in Istio's agent.
func startDNS(o *sidecarOptions, ao *agent.Options, log *slog.Logger) (*agent.DNS, error) {
	d, err := agent.StartDNS(agent.DNSOptions{
		Agent:  ao,
		Server: dnsproxy.Options{Address: o.dnsAddress, ResolvConf: o.dnsResolvConf},
		Logger: log.With("component", "dns"),
	})
	if err != nil {
		return nil, fmt.Errorf("%w (--dns-address= turns the DNS proxy off)", err)
	}
	return d, nil
}
