// Package kube reads weft-control's configuration from Kubernetes: the
// Istio custom resources (networking.istio.io, security.istio.io,
// telemetry.istio.io) and weft's LocalRateLimit, listed and watched with
// client-go's dynamic informers and decoded with internal/config's decoder,
// so that every problem keeps its field path. A Source feeds a
// config.Store the way config.Watcher does for a directory (the last good
// version of a rejected object stays in force) and writes each object's
// problems into its status.validationMessages (Istio's analysis message
// format). Webhook is the validating admission webhook that rejects
// invalid objects at kubectl apply time with the same messages.
// Resources lists the kinds; charts/weft/crds holds their
// CustomResourceDefinitions, generated from it.
package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/config"
)

// Defaults of Options.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultMaxDelay = 500 * time.Millisecond
	// DefaultSyncTimeout bounds Sync's wait for the initial lists.
	DefaultSyncTimeout = time.Minute
)

// SourceName is the Source.File of every object and problem from
// Kubernetes (with Source.Doc -1).
const SourceName = "kubernetes"

// Options configure a Source.
type Options struct {
	// Config reaches the API server (required unless Client and
	// Discovery are set).
	Config *rest.Config
	// DomainSuffix is the cluster's service domain (default
	// "cluster.local"): destinations under ".svc."+DomainSuffix are
	// Kubernetes Services, not reported for want of a ServiceEntry.
	DomainSuffix string
	// PlatformHosts, when set, answers whether a host under
	// ".svc."+DomainSuffix is a Service of the cluster (and its ports),
	// so that destinations naming no Service are reported in the
	// objects' status; call Recheck when its answers change. See
	// config.Platform.Hosts.
	PlatformHosts func(host string) (ports []*networking.ServicePort, found, ok bool)
	// Client and Discovery replace the clients built from Config (tests).
	Client    dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// Store receives every reload (required).
	Store *config.Store
	// Namespace limits the watch to one namespace ("" watches all).
	Namespace string
	// Debounce is how long the objects must stay unchanged after a change
	// before they are reloaded (default DefaultDebounce), so that a
	// `kubectl apply` of many objects gives one reload; MaxDelay bounds
	// the wait while changes keep coming (default DefaultMaxDelay).
	Debounce, MaxDelay time.Duration
	// SyncTimeout bounds Sync's wait for the initial lists (default
	// DefaultSyncTimeout).
	SyncTimeout time.Duration
	// OnChange is called after each reload that changed the objects in
	// force or the set of problems, as config.WatcherOptions.OnChange:
	// one call at a time, from the reloading goroutine.
	OnChange func(config.Changes, []*config.Error)
	// OnError is called with problems of the watch itself (a missing CRD,
	// a failed status write); nil ignores them. The configuration in force
	// is unchanged by such problems.
	OnError func(error)
	// NoStatus turns off the status writes (read-only credentials).
	NoStatus bool
}

// Source lists and watches the Istio resources of a cluster into a
// config.Store. Call Sync (start the watches and load once), then Run;
// Close stops the watches when Run is never called.
type Source struct {
	o         Options
	client    dynamic.Interface
	factory   dynamicinformer.DynamicSharedInformerFactory
	watched   []watched
	changes   chan struct{}
	stop      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex // serializes reloads; guards the fields below
	decoder  config.ObjectDecoder
	lastErrs []string
}

// watched is one resource being watched, at the version found served.
type watched struct {
	res      Resource
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
}

// New checks the options and builds the clients; nothing is listed before
// Sync.
func New(o Options) (*Source, error) {
	if o.Store == nil {
		return nil, errors.New("kubernetes config source: Store is required")
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.SyncTimeout <= 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	var err error
	if o.Client == nil {
		if o.Config == nil {
			return nil, errors.New("kubernetes config source: Config is required")
		}
		if o.Client, err = dynamic.NewForConfig(o.Config); err != nil {
			return nil, fmt.Errorf("kubernetes config source: %w", err)
		}
	}
	if o.Discovery == nil {
		if o.Config == nil {
			return nil, errors.New("kubernetes config source: Config or Discovery is required")
		}
		if o.Discovery, err = discovery.NewDiscoveryClientForConfig(o.Config); err != nil {
			return nil, fmt.Errorf("kubernetes config source: %w", err)
		}
	}
	if o.DomainSuffix == "" {
		o.DomainSuffix = "cluster.local"
	}
	return &Source{
		o:       o,
		decoder: config.ObjectDecoder{Platform: config.Platform{Suffix: ".svc." + o.DomainSuffix, Hosts: o.PlatformHosts}},
		client:  o.Client,
		factory: dynamicinformer.NewFilteredDynamicSharedInformerFactory(o.Client, 0, o.Namespace, nil),
		changes: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}, nil
}

// report passes a problem of the watch to OnError.
func (s *Source) report(err error) {
	if s.o.OnError != nil {
		s.o.OnError(err)
	}
}

// Sync finds which of Resources the API server serves (a kind whose CRD
// is not installed is reported to OnError and skipped: install
// charts/weft/crds), starts watching them, waits for the initial lists (at
// most SyncTimeout, or until ctx ends) and loads them into the Store. The
// watches run until Run returns or Close is called. Call Sync once.
func (s *Source) Sync(ctx context.Context) error {
	for _, r := range Resources() {
		gvr, ok, err := s.served(r)
		if err != nil {
			return err
		}
		if !ok {
			s.report(fmt.Errorf("kubernetes config source: %s is not served (CRD %s not installed: weft install, or kubectl apply -f charts/weft/crds); its objects are not read", r.Kind, r.CRDName()))
			continue
		}
		inf := s.factory.ForResource(gvr).Informer()
		if _, err := inf.AddEventHandler(s.handler()); err != nil {
			return fmt.Errorf("kubernetes config source: watch %s: %w", gvr, err)
		}
		s.watched = append(s.watched, watched{res: r, gvr: gvr, informer: inf})
	}
	s.factory.Start(s.stop)
	ctx, cancel := context.WithTimeout(ctx, s.o.SyncTimeout)
	defer cancel()
	for _, w := range s.watched {
		if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
			return fmt.Errorf("kubernetes config source: listing %s: not done after %s (is the API server reachable, and may weft-control list and watch it?)", w.gvr, s.o.SyncTimeout)
		}
	}
	select {
	case <-s.changes: // the initial adds: the load below covers them
	default:
	}
	s.Reload(ctx)
	return nil
}

// served returns the first of a resource's versions that the API server
// serves.
func (s *Source) served(r Resource) (schema.GroupVersionResource, bool, error) {
	for _, v := range r.Versions {
		gv := r.Group + "/" + v
		list, err := s.o.Discovery.ServerResourcesForGroupVersion(gv)
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return schema.GroupVersionResource{}, false, fmt.Errorf("kubernetes config source: discovering %s: %w", gv, err)
		}
		for _, ar := range list.APIResources {
			if ar.Name == r.Plural {
				return schema.GroupVersionResource{Group: r.Group, Version: v, Resource: r.Plural}, true, nil
			}
		}
	}
	return schema.GroupVersionResource{}, false, nil
}

// handler signals a change for every add, delete, and update that changed
// something weft reads: an update of only the status (weft-control's own
// writes) or of the server-set metadata is not a change.
func (s *Source) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.signal() },
		UpdateFunc: func(oldObj, newObj any) {
			if contentChanged(oldObj, newObj) {
				s.signal()
			}
		},
		DeleteFunc: func(any) { s.signal() },
	}
}

// contentChanged reports whether an update changed what weft reads: the
// spec, labels or annotations (the generation counts spec changes; labels
// and annotations do not bump it).
func contentChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*unstructured.Unstructured)
	n, ok2 := newObj.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	return o.GetGeneration() != n.GetGeneration() ||
		!mapsEqual(o.GetLabels(), n.GetLabels()) ||
		!mapsEqual(o.GetAnnotations(), n.GetAnnotations()) ||
		o.GetUID() != n.GetUID()
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Recheck schedules a reload (debounced as a change of the objects): the
// answers of Options.PlatformHosts changed, so the cross-object checks
// may report otherwise.
func (s *Source) Recheck() { s.signal() }

// signal schedules a reload.
func (s *Source) signal() {
	select {
	case s.changes <- struct{}{}:
	default: // one is already pending
	}
}

// Reload loads every watched object now (decoding again only those whose
// resourceVersion changed), applies the result to the Store, calls
// OnChange when the objects in force or the problems changed, and brings
// the objects' status up to date. Safe for concurrent use: reloads are
// serialized.
func (s *Source) Reload(ctx context.Context) config.Changes {
	s.mu.Lock()
	defer s.mu.Unlock()
	objs := s.list()
	in := make([]config.ObjectInput, len(objs))
	for i, u := range objs {
		in[i] = config.ObjectInput{
			Content:  u.Object,
			Source:   config.Source{File: SourceName, Doc: -1},
			Revision: string(u.GetUID()) + "/" + u.GetResourceVersion(),
		}
	}
	r := s.decoder.Load(in)
	ch := s.o.Store.Apply(r)
	texts := make([]string, len(r.Errors))
	for i, e := range r.Errors {
		texts[i] = e.Error()
	}
	if (!ch.Empty() || !slices.Equal(texts, s.lastErrs)) && s.o.OnChange != nil {
		s.o.OnChange(ch, s.o.Store.Errors())
	}
	s.lastErrs = texts
	if !s.o.NoStatus {
		s.writeStatus(ctx, objs, r) // status.go
	}
	return ch
}

// list returns every object in the watches' caches (shared: read only).
func (s *Source) list() []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, w := range s.watched {
		for _, o := range w.informer.GetStore().List() {
			if u, ok := o.(*unstructured.Unstructured); ok {
				out = append(out, u)
			}
		}
	}
	return out
}

// Run reloads after every change (debounced as Options say) until ctx
// ends, then stops the watches and returns nil. Call it once, after Sync.
func (s *Source) Run(ctx context.Context) error {
	defer s.Close()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pendingSince time.Time // zero: no reload pending
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		case <-s.changes:
			now := time.Now()
			if pendingSince.IsZero() {
				pendingSince = now
			}
			delay := min(s.o.Debounce, time.Until(pendingSince.Add(s.o.MaxDelay)))
			timer.Reset(max(delay, 0))
		case <-timer.C:
			pendingSince = time.Time{}
			s.Reload(ctx)
		}
	}
}

// Close stops the watches; a running Run returns. Safe to call more than
// once.
func (s *Source) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.factory.Shutdown()
	})
}
