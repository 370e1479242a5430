package translate

import (
	"sort"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	mesh "istio.io/api/mesh/v1alpha1"
	telemetry "istio.io/api/telemetry/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/model"
)

// addTelemetrySelectors registers the workload selectors of Telemetry
// resources: which ones match a proxy is part of its scope key, so that
// proxies with different Telemetry get different access logs.
func (idx *index) addTelemetrySelectors(s *model.Snapshot) {
	for _, obj := range s.List(config.Telemetry) {
		if spec, ok := obj.Spec.(*telemetry.Telemetry); ok {
			idx.addSelector(spec, obj.Namespace, spec.GetSelector().GetMatchLabels())
		}
	}
}

// alogLevel is the accessLogging of one applicable Telemetry.
type alogLevel []*telemetry.AccessLogging

// applicableAccessLogging returns the accessLogging of the Telemetry
// resources that apply to the scope's proxies, least specific first, as
// Istio's applicableTelemetries: the root namespace's mesh-wide Telemetry
// (no selector), the proxy namespace's namespace-wide one, then every
// Telemetry of the namespace whose selector matches. A namespace-wide
// Telemetry is the first of the namespace in the snapshot's order (Istio
// takes the oldest). targetRef(s) attach to Gateway API gateways, which
// weft does not serve: such Telemetry resources do not apply.
func (s *scope) applicableAccessLogging() []alogLevel {
	root := s.idx.snap.RootNamespace
	var levels []alogLevel
	if t := s.namespaceWideTelemetry(root); t != nil && len(t.GetAccessLogging()) > 0 {
		levels = append(levels, t.GetAccessLogging())
	}
	if s.ns != root {
		if t := s.namespaceWideTelemetry(s.ns); t != nil && len(t.GetAccessLogging()) > 0 {
			levels = append(levels, t.GetAccessLogging())
		}
	}
	for _, obj := range s.idx.snap.List(config.Telemetry) {
		spec, ok := obj.Spec.(*telemetry.Telemetry)
		if !ok || obj.Namespace != s.ns || len(spec.GetSelector().GetMatchLabels()) == 0 {
			continue
		}
		if id, ok := s.idx.selectorID[spec]; ok && s.matched[id] && len(spec.GetAccessLogging()) > 0 {
			levels = append(levels, spec.GetAccessLogging())
		}
	}
	return levels
}

func (s *scope) namespaceWideTelemetry(ns string) *telemetry.Telemetry {
	for _, obj := range s.idx.snap.List(config.Telemetry) {
		spec, ok := obj.Spec.(*telemetry.Telemetry)
		if !ok || obj.Namespace != ns {
			continue
		}
		if len(spec.GetSelector().GetMatchLabels()) == 0 && spec.GetTargetRef() == nil && len(spec.GetTargetRefs()) == 0 {
			return spec
		}
	}
	return nil
}

// telemetryAccessLogs returns the access logs Telemetry decides for mode,
// sorted by provider name as Istio sorts them; nil when no Telemetry
// configures access logging and there is no default provider (the mesh
// configuration's accessLogFile then applies); an empty non-nil list when
// Telemetry turned every log off.
func (s *scope) telemetryAccessLogs(m *mesh.MeshConfig, mode telemetry.WorkloadMode) []*accesslogv3.AccessLog {
	levels := s.applicableAccessLogging()
	defaults := m.GetDefaultProviders().GetAccessLogging()
	if len(levels) == 0 && len(defaults) == 0 {
		return nil
	}
	providers := mergeAccessLogging(levels, defaults, mode)
	names := make([]string, 0, len(providers))
	for name, disabled := range providers {
		if !disabled {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := []*accesslogv3.AccessLog{}
	for _, name := range names {
		p := findProvider(m, name)
		if p == nil {
			continue // reported by telemetryAccessLogWarnings
		}
		if al := providerAccessLog(p, m); al != nil {
			out = append(out, al)
		}
	}
	return out
}

// mergeAccessLogging is Istio's mergeLogs: the providers in force for
// mode, each mapped to whether it is disabled. The providers in scope are
// those the most specific level names (for entries matching mode), else
// the default providers; every entry matching mode then sets, in order,
// its providers (or its predecessor's when it names none) to enabled or,
// with disabled: true, disabled. CEL filters are not applied (Telemetry
// validation warns).
func mergeAccessLogging(levels []alogLevel, defaults []string, mode telemetry.WorkloadMode) map[string]bool {
	out := map[string]bool{}
	if len(levels) == 0 {
		for _, p := range defaults {
			out[p] = false
		}
		return out
	}
	inScope := defaults
	for _, level := range levels {
		var names []string
		for _, e := range level {
			if matchesMode(e, mode) {
				names = append(names, providerNames(e)...)
			}
		}
		if len(names) > 0 {
			inScope = names
		}
	}
	allowed := map[string]bool{}
	for _, p := range inScope {
		allowed[p] = true
	}
	parent := defaults
	for _, level := range levels {
		for _, e := range level {
			names := providerNames(e)
			if len(names) == 0 {
				names = parent
			}
			parent = names
			if !matchesMode(e, mode) {
				continue
			}
			for _, p := range names {
				if allowed[p] {
					out[p] = e.GetDisabled().GetValue()
				}
			}
		}
	}
	return out
}

func matchesMode(e *telemetry.AccessLogging, mode telemetry.WorkloadMode) bool {
	sel := e.GetMatch()
	return sel == nil || sel.GetMode() == telemetry.WorkloadMode_CLIENT_AND_SERVER || sel.GetMode() == mode
}

func providerNames(e *telemetry.AccessLogging) []string {
	var out []string
	for _, p := range e.GetProviders() {
		if p.GetName() != "" {
			out = append(out, p.GetName())
		}
	}
	return out
}
