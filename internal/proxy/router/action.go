package router

import (
	"bytes"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

var clusterNotFoundCodes = map[routev3.RouteAction_ClusterNotFoundResponseCode]int{
	routev3.RouteAction_SERVICE_UNAVAILABLE:   503,
	routev3.RouteAction_NOT_FOUND:             404,
	routev3.RouteAction_INTERNAL_SERVER_ERROR: 500,
}

func (c *compiler) compileRouteAction(r *Route, ra *routev3.RouteAction, path string) error {
	if err := checkFields(ra, path, "cluster", "weighted_clusters", "cluster_not_found_response_code",
		"prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "auto_host_rewrite", "timeout",
		"idle_timeout", "hash_policy", "upgrade_configs", "max_stream_duration",
		"retry_policy", "request_mirror_policies"); err != nil {
		return err
	}
	if err := c.compileClusters(r, ra, path); err != nil {
		return err
	}
	code, ok := clusterNotFoundCodes[ra.GetClusterNotFoundResponseCode()]
	if !ok {
		return errAt(field(path, "cluster_not_found_response_code"), "unknown code %v", ra.GetClusterNotFoundResponseCode())
	}
	r.clusterNotFoundStatus = code
	if err := compileTimeouts(r, ra, path); err != nil {
		return err
	}
	if err := compileRewrites(r, ra, path); err != nil {
		return err
	}
	var err error
	if r.hash, err = compileHashPolicies(ra.GetHashPolicy(), field(path, "hash_policy")); err != nil {
		return err
	}
	return compileUpgrades(r, ra, path)
}

func (c *compiler) compileClusters(r *Route, ra *routev3.RouteAction, path string) error {
	switch s := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if s.Cluster == "" {
			return errAt(field(path, "cluster"), "cluster name must not be empty")
		}
		if err := c.checkCluster(s.Cluster, field(path, "cluster")); err != nil {
			return err
		}
		r.targets = []ClusterTarget{{Name: s.Cluster}}
		return nil
	case *routev3.RouteAction_WeightedClusters:
		return c.compileWeighted(r, s.WeightedClusters, field(path, "weighted_clusters"))
	}
	return errAt(path, "one of cluster or weighted_clusters is required")
}

func (c *compiler) compileWeighted(r *Route, wc *routev3.WeightedCluster, path string) error {
	if err := checkFields(wc, path, "clusters", "total_weight"); err != nil {
		return err
	}
	if len(wc.GetClusters()) == 0 {
		return errAt(field(path, "clusters"), "at least one cluster is required")
	}
	for i, cw := range wc.GetClusters() {
		p := index(field(path, "clusters"), i)
		t, err := c.compileClusterWeight(cw, p)
		if err != nil {
			return err
		}
		r.targets = append(r.targets, t)
	}
	total, ok := sumWeights(r.targets)
	switch {
	case !ok:
		return errAt(field(path, "clusters"), "the sum of the weights exceeds 4294967295")
	case total == 0:
		return errAt(field(path, "clusters"), "the sum of the weights must be greater than 0")
	case wc.GetTotalWeight() != nil && wc.GetTotalWeight().GetValue() > 0 && uint64(wc.GetTotalWeight().GetValue()) != total:
		return errAt(field(path, "total_weight"), "the weights add up to %d, not total_weight %d", total, wc.GetTotalWeight().GetValue())
	}
	r.totalWeight = total
	return nil
}

func (c *compiler) compileClusterWeight(cw *routev3.WeightedCluster_ClusterWeight, path string) (ClusterTarget, error) {
	if err := checkFields(cw, path, "name", "weight", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove", "host_rewrite_literal"); err != nil {
		return ClusterTarget{}, err
	}
	if cw.GetName() == "" {
		return ClusterTarget{}, errAt(field(path, "name"), "cluster name is required")
	}
	if cw.GetWeight() == nil {
		return ClusterTarget{}, errAt(field(path, "weight"), "weight is required")
	}
	if err := c.checkCluster(cw.GetName(), field(path, "name")); err != nil {
		return ClusterTarget{}, err
	}
	t := ClusterTarget{Name: cw.GetName(), Weight: cw.GetWeight().GetValue()}
	if h := cw.GetHostRewriteLiteral(); h != "" {
		t.hostRewrite = []byte(h)
	}
	var err error
	t.request, err = compileMutation(cw.GetRequestHeadersToAdd(), cw.GetRequestHeadersToRemove(),
		field(path, "request_headers_to_add"), field(path, "request_headers_to_remove"))
	if err != nil {
		return ClusterTarget{}, err
	}
	t.response, err = compileMutation(cw.GetResponseHeadersToAdd(), cw.GetResponseHeadersToRemove(),
		field(path, "response_headers_to_add"), field(path, "response_headers_to_remove"))
	return t, err
}

func compileTimeouts(r *Route, ra *routev3.RouteAction, path string) error {
	var err error
	r.timeout = DefaultTimeout
	if ra.GetTimeout() != nil {
		if r.timeout, err = duration(ra.GetTimeout(), field(path, "timeout")); err != nil {
			return err
		}
	}
	if ra.GetIdleTimeout() != nil {
		if r.idleTimeout, err = duration(ra.GetIdleTimeout(), field(path, "idle_timeout")); err != nil {
			return err
		}
		r.hasIdleTimeout = true
	}
	msd := ra.GetMaxStreamDuration()
	if msd == nil {
		return nil
	}
	p := field(path, "max_stream_duration")
	m := &r.maxStream
	if d := msd.GetMaxStreamDuration(); d != nil {
		if m.MaxStreamDuration, err = duration(d, field(p, "max_stream_duration")); err != nil {
			return err
		}
		m.HasMaxStreamDuration = true
	}
	if d := msd.GetGrpcTimeoutHeaderMax(); d != nil {
		if m.GrpcTimeoutHeaderMax, err = duration(d, field(p, "grpc_timeout_header_max")); err != nil {
			return err
		}
		m.HasGrpcTimeoutHeaderMax = true
	}
	if d := msd.GetGrpcTimeoutHeaderOffset(); d != nil {
		if m.GrpcTimeoutHeaderOffset, err = duration(d, field(p, "grpc_timeout_header_offset")); err != nil {
			return err
		}
		m.HasGrpcTimeoutHeaderOffset = true
	}
	return nil
}

func compileRewrites(r *Route, ra *routev3.RouteAction, path string) error {
	if p := ra.GetPrefixRewrite(); p != "" {
		r.prefixRewrite, r.hasPrefixRewrite = []byte(p), true
	}
	if rw := ra.GetRegexRewrite(); rw != nil {
		if r.hasPrefixRewrite {
			return errAt(path, "specify only one of prefix_rewrite and regex_rewrite")
		}
		re, tmpl, err := compileRegexRewrite(rw, field(path, "regex_rewrite"))
		if err != nil {
			return err
		}
		r.regexRewrite, r.regexTemplate = re, tmpl
	}
	switch h := ra.GetHostRewriteSpecifier().(type) {
	case *routev3.RouteAction_HostRewriteLiteral:
		if h.HostRewriteLiteral != "" {
			r.hostRewrite = []byte(h.HostRewriteLiteral)
		}
	case *routev3.RouteAction_AutoHostRewrite:
		r.autoHostRewrite = h.AutoHostRewrite.GetValue()
	}
	return nil
}

func compileUpgrades(r *Route, ra *routev3.RouteAction, path string) error {
	for i, uc := range ra.GetUpgradeConfigs() {
		p := index(field(path, "upgrade_configs"), i)
		if err := checkFields(uc, p, "upgrade_type", "enabled"); err != nil {
			return err
		}
		proto := lowerBytes(uc.GetUpgradeType())
		if len(proto) == 0 {
			return errAt(field(p, "upgrade_type"), "upgrade type is required")
		}
		for _, prev := range r.upgrades {
			if bytes.Equal(prev.proto, proto) {
				return errAt(field(p, "upgrade_type"), "duplicate upgrade %q", uc.GetUpgradeType())
			}
		}
		enabled := true
		if e := uc.GetEnabled(); e != nil {
			enabled = e.GetValue()
		}
		r.upgrades = append(r.upgrades, upgradeConfig{proto: proto, enabled: enabled})
	}
	return nil
}
