package xds

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"weak"

	"github.com/cespare/xxhash/v2"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/internal/translate"
)

// The resource types weft-control serves, in the order ADS sends them:
// clusters before their endpoints, listeners before their routes (Envoy's
// "eventual consistency considerations" in the xDS protocol doc; the same
// order as go-control-plane's types.ResponseType).
const (
	typeCluster = iota
	typeEndpoint
	typeListener
	typeRoute
	// typeNameTable is Istio's NDS name table, last: it only concerns the
	// agent's DNS proxy. Only proxies whose node metadata says DNS_CAPTURE
	// have one (translate.Resources.NameTables); for the others an NDS
	// subscription waits, like one for a type weft-control does not serve.
	typeNameTable
	numTypes
)

// typeURLs are the type URLs by type index.
var typeURLs = [numTypes]string{
	resourcev3.ClusterType,
	resourcev3.EndpointType,
	resourcev3.ListenerType,
	resourcev3.RouteType,
	translate.NameTableType,
}

// shortNames are Istio's metric labels for the types.
var shortNames = [numTypes]string{"cds", "eds", "lds", "rds", "nds"}

// typeIndex returns the index of a type URL, or false for a type
// weft-control does not serve.
func typeIndex(url string) (int, bool) {
	for i, u := range typeURLs {
		if u == url {
			return i, true
		}
	}
	return 0, false
}

// shortName returns the metric label of a type URL ("other" for types
// weft-control does not serve).
func shortName(url string) string {
	if t, ok := typeIndex(url); ok {
		return shortNames[t]
	}
	return "other"
}

// typeSet is one version of the resources of one type, encoded once. It is
// immutable and shared by every proxy whose resources of that type have
// the same version (translate's versions are content hashes), so the
// encoded bytes exist once per distinct content, not once per proxy.
type typeSet struct {
	typ     int
	version string
	// names are sorted; anys[i] is the encoded resource names[i].
	names []string
	anys  []*anypb.Any
	// index maps a name to its position in names.
	index map[string]int
	// versions maps a name to the hash of its encoding: the per-resource
	// version of the delta protocol.
	versions map[string]string
	// hashes[i] is a hash of names[i] (for SotW's returned-names
	// fingerprint).
	hashes []uint64

	deltaOnce sync.Once
	deltaRes  []*discoveryv3.Resource
}

// has reports whether the set holds a resource named name.
func (ts *typeSet) has(name string) bool {
	_, ok := ts.index[name]
	return ok
}

// deltaResources returns the resources wrapped for delta responses, built
// on first use (a proxy that speaks only SotW never pays for them).
func (ts *typeSet) deltaResources() []*discoveryv3.Resource {
	ts.deltaOnce.Do(func() {
		ts.deltaRes = make([]*discoveryv3.Resource, len(ts.names))
		for i, name := range ts.names {
			ts.deltaRes[i] = &discoveryv3.Resource{Name: name, Version: ts.versions[name], Resource: ts.anys[i]}
		}
	})
	return ts.deltaRes
}

// encoded is one marshalled resource while a set is built.
type encoded struct {
	name  string
	value []byte
}

// newTypeSet encodes the resources of one type. Marshalling is
// deterministic, so equal messages give equal bytes and equal per-resource
// versions. version "" asks for a version computed from the content.
func newTypeSet[M proto.Message](typ int, version string, m map[string]M) (*typeSet, error) {
	enc := make([]encoded, 0, len(m))
	opts := proto.MarshalOptions{Deterministic: true}
	for key, msg := range m {
		name := cachev3.GetResourceName(msg)
		if name != key {
			return nil, fmt.Errorf("%s resource %q: its name field says %q; the map key must be the resource's name", shortNames[typ], key, name)
		}
		b, err := opts.Marshal(msg)
		if err != nil {
			return nil, fmt.Errorf("%s resource %q: encoding: %w", shortNames[typ], key, err)
		}
		enc = append(enc, encoded{name: key, value: b})
	}
	slices.SortFunc(enc, func(a, b encoded) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	ts := &typeSet{
		typ:      typ,
		names:    make([]string, len(enc)),
		anys:     make([]*anypb.Any, len(enc)),
		index:    make(map[string]int, len(enc)),
		versions: make(map[string]string, len(enc)),
		hashes:   make([]uint64, len(enc)),
	}
	whole := xxhash.New()
	for i, e := range enc {
		h := strconv.FormatUint(xxhash.Sum64(e.value), 16)
		ts.names[i] = e.name
		ts.anys[i] = &anypb.Any{TypeUrl: typeURLs[typ], Value: e.value}
		ts.index[e.name] = i
		ts.versions[e.name] = h
		ts.hashes[i] = xxhash.Sum64String(e.name)
		_, _ = whole.WriteString(e.name)
		_, _ = whole.WriteString(h)
	}
	ts.version = version
	if ts.version == "" {
		ts.version = "c" + strconv.FormatUint(whole.Sum64(), 16)
	}
	return ts, nil
}

// nodeResources are one proxy's current resources: one shared set per
// type. Immutable.
type nodeResources struct {
	sets [numTypes]*typeSet
}

// setKey identifies a shareable set. The count is part of the key as a
// cheap guard against a version that is not the content hash translate
// promises.
type setKey struct {
	typ     int
	version string
	count   int
}

// setCache deduplicates typeSets across proxies: proxies whose resources
// of a type have the same version share one encoded set. Entries are held
// weakly: a set lives as long as some proxy uses it. Concurrent requests
// for the same key build it once.
type setCache struct {
	mu sync.Mutex
	m  map[setKey]*setSlot
}

type setSlot struct {
	ready chan struct{} // closed once ts and err are set
	ts    weak.Pointer[typeSet]
	err   error
}

type evictArg struct {
	key  setKey
	slot *setSlot
}

func newSetCache() *setCache { return &setCache{m: map[setKey]*setSlot{}} }

// get returns the set for k, building it with build when no live set has
// that key.
func (c *setCache) get(k setKey, build func() (*typeSet, error)) (*typeSet, error) {
	for {
		c.mu.Lock()
		slot, ok := c.m[k]
		if !ok {
			slot = &setSlot{ready: make(chan struct{})}
			c.m[k] = slot
			c.mu.Unlock()
			return c.fill(k, slot, build)
		}
		c.mu.Unlock()
		<-slot.ready
		if slot.err != nil {
			return nil, slot.err
		}
		if ts := slot.ts.Value(); ts != nil {
			return ts, nil
		}
		// Collected between its last use and now: drop the slot and build
		// again.
		c.evict(evictArg{key: k, slot: slot})
	}
}

func (c *setCache) fill(k setKey, slot *setSlot, build func() (*typeSet, error)) (ts *typeSet, err error) {
	defer func() {
		if err != nil {
			slot.err = err
			// A failed build is not cached: the next push tries again.
			c.evict(evictArg{key: k, slot: slot})
		}
		close(slot.ready)
	}()
	ts, err = build()
	if err != nil {
		return nil, err
	}
	slot.ts = weak.Make(ts)
	runtime.AddCleanup(ts, c.evict, evictArg{key: k, slot: slot})
	return ts, nil
}

// evict removes a slot unless it has been replaced already.
func (c *setCache) evict(a evictArg) {
	c.mu.Lock()
	if c.m[a.key] == a.slot {
		delete(c.m, a.key)
	}
	c.mu.Unlock()
}

// len returns the number of slots (live or not yet cleaned up).
func (c *setCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// build returns the node resources for r, reusing prev's sets for types
// whose version did not change and shared sets for versions another proxy
// already has.
func (c *setCache) build(prev *nodeResources, r *translate.Resources) (*nodeResources, error) {
	nr := &nodeResources{}
	for t := range numTypes {
		ts, err := c.buildType(prev, r, t)
		if err != nil {
			return nil, err
		}
		nr.sets[t] = ts
	}
	return nr, nil
}

func (c *setCache) buildType(prev *nodeResources, r *translate.Resources, t int) (*typeSet, error) {
	if t == typeNameTable && r.NameTables == nil {
		return nil, nil // no name table for this proxy: nothing to answer
	}
	version := r.Versions[typeURLs[t]]
	count := resourceCount(r, t)
	if version == "" {
		// Not a translate output that follows the contract: no sharing,
		// the version comes from the content.
		return encodeType(r, t, "")
	}
	if prev != nil {
		if old := prev.sets[t]; old != nil && old.version == version && len(old.names) == count {
			return old, nil
		}
	}
	return c.get(setKey{typ: t, version: version, count: count}, func() (*typeSet, error) {
		return encodeType(r, t, version)
	})
}

func resourceCount(r *translate.Resources, t int) int {
	switch t {
	case typeCluster:
		return len(r.Clusters)
	case typeEndpoint:
		return len(r.Endpoints)
	case typeListener:
		return len(r.Listeners)
	case typeNameTable:
		return len(r.NameTables)
	default:
		return len(r.Routes)
	}
}

func encodeType(r *translate.Resources, t int, version string) (*typeSet, error) {
	switch t {
	case typeCluster:
		return newTypeSet(t, version, r.Clusters)
	case typeEndpoint:
		return newTypeSet(t, version, r.Endpoints)
	case typeListener:
		return newTypeSet(t, version, r.Listeners)
	case typeNameTable:
		return newTypeSet(t, version, r.NameTables)
	default:
		return newTypeSet(t, version, r.Routes)
	}
}
