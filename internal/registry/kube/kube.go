// Package kube is weft-control's Kubernetes service registry: a
// registry.Registry whose services come from the cluster's Services,
// EndpointSlices, Pods and Namespaces, read through client-go informers
// and converted with Istio's rules (Build, convert.go). The control plane
// merges it with the ServiceEntry registry (registry.Aggregate: a
// Kubernetes Service takes precedence over a ServiceEntry with the same
// host in the same namespace, as in Istio).
//
// The registry only reads the API (list and watch): it keeps no state of
// its own beyond the informers' caches, so several weft-control replicas
// can run side by side, each serving the proxies connected to it.
//
// Data flow: informer events → a dirty signal (bounded: one pending
// rebuild) → one goroutine (Run) rebuilds every service from the caches,
// publishes them with an atomic swap and notifies subscribers.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
)

// Options configure the registry (and Build).
type Options struct {
	// Client reads the API server (required by New; Build ignores it).
	Client kubernetes.Interface
	// Name is the registry's name (default DefaultName).
	Name string
	// ClusterID labels every endpoint topology.istio.io/cluster (default
	// DefaultClusterID, Istio's default cluster name).
	ClusterID string
	// DomainSuffix ends every hostname (default DefaultDomainSuffix).
	DomainSuffix string
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultName         = "kubernetes"
	DefaultClusterID    = "Kubernetes"
	DefaultDomainSuffix = "cluster.local"
)

func (o Options) withDefaults() Options {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.ClusterID == "" {
		o.ClusterID = DefaultClusterID
	}
	if o.DomainSuffix == "" {
		o.DomainSuffix = DefaultDomainSuffix
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Registry is the Kubernetes registry. Create it with New, run it with
// Run; Services is empty until the informers have synced and the first
// build is published (Synced).
//
// Safe for concurrent use: Services never blocks (it reads an atomically
// swapped result); subscribers are called from Run's goroutine.
type Registry struct {
	o       Options
	factory informers.SharedInformerFactory

	services   corelisters.ServiceLister
	slices     discoverylisters.EndpointSliceLister
	pods       corelisters.PodLister
	namespaces corelisters.NamespaceLister

	dirty  chan struct{} // capacity 1: a pending rebuild
	synced chan struct{} // closed after the first build is published
	state  atomic.Pointer[[]*model.Service]
	subs   registry.Subscribers
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry over o.Client; nothing is read until Run.
func New(o Options) (*Registry, error) {
	if o.Client == nil {
		return nil, errors.New("kube registry: Options.Client is required (a clientset for the cluster)")
	}
	o = o.withDefaults()
	r := &Registry{
		o:       o,
		factory: informers.NewSharedInformerFactory(o.Client, 0),
		dirty:   make(chan struct{}, 1),
		synced:  make(chan struct{}),
	}
	empty := []*model.Service{}
	r.state.Store(&empty)
	svc := r.factory.Core().V1().Services()
	sl := r.factory.Discovery().V1().EndpointSlices()
	pod := r.factory.Core().V1().Pods()
	ns := r.factory.Core().V1().Namespaces()
	r.services, r.slices, r.pods, r.namespaces = svc.Lister(), sl.Lister(), pod.Lister(), ns.Lister()
	for _, inf := range []struct {
		informer cache.SharedIndexInformer
		relevant func(old, cur any) bool
	}{
		{svc.Informer(), changedVersion},
		{sl.Informer(), changedVersion},
		{pod.Informer(), podChanged},
		{ns.Informer(), labelsChanged},
	} {
		if err := inf.informer.SetTransform(stripManagedFields); err != nil {
			return nil, fmt.Errorf("kube registry: %w", err)
		}
		if _, err := inf.informer.AddEventHandler(r.handler(inf.relevant)); err != nil {
			return nil, fmt.Errorf("kube registry: %w", err)
		}
	}
	return r, nil
}

// handler marks the registry dirty on adds, deletes and relevant updates.
func (r *Registry) handler(relevant func(old, cur any) bool) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { r.markDirty() },
		UpdateFunc: func(old, cur any) {
			if relevant(old, cur) {
				r.markDirty()
			}
		},
		DeleteFunc: func(any) { r.markDirty() },
	}
}

func (r *Registry) markDirty() {
	select {
	case r.dirty <- struct{}{}:
	default: // a rebuild is already pending: it will see this change too
	}
}

// stripManagedFields drops metadata.managedFields, which the registry
// never reads, to keep the caches small.
func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// changedVersion: any change of a Service or an EndpointSlice matters.
func changedVersion(old, cur any) bool {
	o, err1 := meta.Accessor(old)
	c, err2 := meta.Accessor(cur)
	return err1 != nil || err2 != nil || o.GetResourceVersion() != c.GetResourceVersion()
}

// podChanged: only what Build reads of a Pod (readiness comes from the
// EndpointSlices, so status updates do not count).
func podChanged(old, cur any) bool {
	o, ok1 := old.(*corev1.Pod)
	c, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return !maps.Equal(o.Labels, c.Labels) || o.Spec.ServiceAccountName != c.Spec.ServiceAccountName ||
		!slices.Equal(o.OwnerReferences, c.OwnerReferences)
}

// labelsChanged: Build reads only a Namespace's labels.
func labelsChanged(old, cur any) bool {
	o, err1 := meta.Accessor(old)
	c, err2 := meta.Accessor(cur)
	return err1 != nil || err2 != nil || !maps.Equal(o.GetLabels(), c.GetLabels())
}

// Name implements registry.Registry.
func (r *Registry) Name() string { return r.o.Name }

// Provider implements registry.Registry: Kubernetes.
func (r *Registry) Provider() registry.Provider { return registry.Kubernetes }

// Services implements registry.Source.
func (r *Registry) Services() []*model.Service { return *r.state.Load() }

// Subscribe implements registry.Source: f is called from Run's goroutine
// after each rebuild that changed a service (services that did not change
// keep their pointers).
func (r *Registry) Subscribe(f func()) func() { return r.subs.Add(f) }

// Synced is closed once the informers have synced and the first build is
// visible through Services.
func (r *Registry) Synced() <-chan struct{} { return r.synced }

func (r *Registry) isSynced() bool {
	select {
	case <-r.synced:
		return true
	default:
		return false
	}
}

// WaitForSync waits until Synced is closed or ctx ends (then it returns
// ctx's error).
func (r *Registry) WaitForSync(ctx context.Context) error {
	select {
	case <-r.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kube registry: waiting for the Kubernetes caches to sync (is the API server reachable and may weft-control list and watch services, endpointslices, pods and namespaces?): %w", context.Cause(ctx))
	}
}

// Run starts the informers and rebuilds the services after each change
// until ctx ends. Call it once.
func (r *Registry) Run(ctx context.Context) error {
	r.factory.Start(ctx.Done())
	defer r.factory.Shutdown()
	if res := r.factory.WaitForCacheSyncWithContext(ctx); res.Err != nil {
		return fmt.Errorf("kube registry: informers did not sync: %w", res.Err)
	}
	r.rebuild()
	close(r.synced)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.dirty:
			r.rebuild()
		}
	}
}

// rebuild converts the caches' current content, publishes it and
// notifies subscribers.
func (r *Registry) rebuild() {
	start := time.Now()
	objs, err := r.objects()
	if err != nil { // listers over local caches do not fail; keep the last result
		r.o.Logger.Error("kube registry: reading the informer caches", "err", err)
		return
	}
	prev := *r.state.Load()
	out := reuseUnchanged(prev, Build(objs, r.o))
	if r.isSynced() && slices.Equal(prev, out) {
		return // nothing the mesh sees changed (say, an unrelated pod's labels)
	}
	r.state.Store(&out)
	r.o.Logger.Debug("kube registry rebuilt", "services", len(out), "took", time.Since(start))
	r.subs.Notify()
}

// reuseUnchanged replaces each service of next that equals its previous
// version with the previous pointer, so that consumers comparing pointers
// (registry.Source's contract allows it) see only what changed. Both are
// sorted by hostname then namespace.
func reuseUnchanged(prev, next []*model.Service) []*model.Service {
	i := 0
	for n, s := range next {
		for i < len(prev) && (prev[i].Hostname < s.Hostname || prev[i].Hostname == s.Hostname && prev[i].Namespace < s.Namespace) {
			i++
		}
		if i < len(prev) && reflect.DeepEqual(prev[i], s) {
			next[n] = prev[i]
		}
	}
	return next
}

func (r *Registry) objects() (Objects, error) {
	svcs, err := r.services.List(labels.Everything())
	if err != nil {
		return Objects{}, err
	}
	sls, err := r.slices.List(labels.Everything())
	if err != nil {
		return Objects{}, err
	}
	return Objects{
		Services: svcs,
		Slices:   sls,
		Pod: func(ns, name string) *corev1.Pod {
			p, err := r.pods.Pods(ns).Get(name)
			if err != nil {
				return nil
			}
			return p
		},
		Namespace: func(name string) *corev1.Namespace {
			n, err := r.namespaces.Get(name)
			if err != nil {
				return nil
			}
			return n
		},
	}, nil
}
