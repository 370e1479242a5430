package server

import (
	"fmt"

	"github.com/weftmesh/weft/internal/proxy/httpfilter"
	"github.com/weftmesh/weft/internal/proxy/routerfilter"
	"github.com/weftmesh/weft/internal/proxy/stats"
	"github.com/weftmesh/weft/internal/proxy/tlsctx"
	"github.com/weftmesh/weft/internal/proxy/upstream"
)

// Check builds every component of o.Bootstrap without binding sockets or
// resolving names, as Envoy's --mode validate does: it finds the errors
// that only construction reveals (route compilation, load-balancer and
// filter-chain settings).
func Check(o Options) error {
	s := &Server{o: o, stats: stats.NewStore(), secrets: tlsctx.NewStore()}
	s.clusters = upstream.NewManager(upstream.Options{Stats: s.stats, NoDiscovery: true, Secrets: s.secrets})
	s.sds = newSecretManager(s)
	defer s.clusters.Close()
	s.alogs = checkAccessLogs()
	defer s.alogs.Close()
	s.filters = httpfilter.NewRegistry()
	routerfilter.Register(s.filters)
	b := o.Bootstrap
	for i, c := range b.GetStaticResources().GetClusters() {
		if err := s.clusters.AddOrUpdate(c); err != nil {
			return fmt.Errorf("static_resources.clusters[%d]: %w", i, err)
		}
	}
	for i, l := range b.GetStaticResources().GetListeners() {
		bl := &builtListener{cfg: l}
		_, err := s.buildChains(bl, l, nil)
		for _, c := range bl.built {
			c.close()
		}
		if err != nil {
			return fmt.Errorf("static_resources.listeners[%d] (%s): %w", i, l.GetName(), err)
		}
		s.static = append(s.static, bl)
	}
	if err := s.sds.checkRefs(s.staticSecretRefs()); err != nil {
		return fmt.Errorf("static_resources: %w", err)
	}
	cfg, err := parseADS(b)
	if err != nil {
		return err
	}
	if cfg != nil && s.clusters.Get(cfg.cluster).Protocol() != upstream.HTTP2 {
		return fmt.Errorf("dynamic_resources.ads_config: cluster %q must speak HTTP/2 (gRPC)", cfg.cluster)
	}
	return nil
}
