package localmesh

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane"
)

// up is a running weft up. The goroutine of Run owns every field below
// (start, loop, reconcile and stopAll run on it); the watchers only signal
// changes.
type up struct {
	o     Options
	cp    *controlplane.ControlPlane
	alloc *Loopback
	mesh  *meshv1alpha1.MeshConfig
	out   *syncWriter
	spawn *spawner

	dir, applied *config.Store
	// lastApplied are weft apply's objects of the last good load.
	lastApplied []*config.Object
	changes     chan struct{} // a watcher reloaded: reconcile (buffered 1)

	gateway *proxy
	gwIP    string
	running map[string]*running // by "namespace/name"
	warned  map[string]bool
	started bool // the first reconcile is done
}

// running is a started replica.
type running struct {
	r       *Replica
	sidecar *proxy
	child   *child // nil when its command failed to start
	stopped atomic.Bool
}

// Gateway identity (Istio's ingress gateway deployment).
const (
	gatewayName      = "istio-ingressgateway"
	gatewayNamespace = "istio-system"
	gatewaySA        = "istio-ingressgateway-service-account"
)

// watch loads the directory and weft apply's directory into stores of
// their own (the Workloads, and the overrides for weft-control) and
// watches both until ctx ends.
func (u *up) watch(ctx context.Context) error {
	u.dir, u.applied = config.NewStore(), config.NewStore()
	for _, w := range []struct {
		dir   string
		store *config.Store
	}{{u.o.Dir, u.dir}, {filepath.Join(u.o.StateDir, appliedDir), u.applied}} {
		watcher, err := config.NewWatcher(config.WatcherOptions{
			Dir: w.dir, Store: w.store,
			OnChange: func(config.Changes, []*config.Error) { u.notify() },
			OnError:  func(err error) { u.o.Logger.Warn("watching", "dir", w.dir, "err", err) },
		})
		if err != nil {
			return err
		}
		if _, err := watcher.Reload(); err != nil {
			watcher.Close()
			return err
		}
		go watcher.Run(ctx) //nolint:errcheck // Run returns nil
	}
	select { // the initial reloads: start covers them
	case <-u.changes:
	default:
	}
	return nil
}

// notify asks the loop to reconcile.
func (u *up) notify() {
	select {
	case u.changes <- struct{}{}:
	default:
	}
}

// appliedObjects are weft apply's objects in force. They are validated
// together with the directory, as `weft apply` checked them (a
// VirtualService applied alone names subsets of the directory's
// DestinationRules): the applied directory's own store, which sees them
// alone, only tells when they changed. A load that fails keeps the last
// good set.
func (u *up) appliedObjects() []*config.Object {
	dir := filepath.Join(u.o.StateDir, appliedDir)
	r, err := config.LoadOverlay([]string{u.o.Dir}, []string{dir})
	if err != nil {
		u.o.Logger.Warn("weft apply's objects", "dir", dir, "err", err)
		return u.lastApplied
	}
	prefix := dir + string(filepath.Separator)
	var out []*config.Object
	for _, obj := range r.Objects {
		if strings.HasPrefix(obj.Source.File, prefix) {
			out = append(out, obj)
		}
	}
	for _, e := range r.Errors {
		if strings.HasPrefix(e.Source.File, prefix) && !e.Warning && !u.warned[e.Error()] {
			u.warned[e.Error()] = true
			u.say("%v", e)
		}
	}
	u.lastApplied = out
	return out
}

// objects is the configuration in force: the directory's objects, those
// of weft apply (applied) replacing any with the same key.
func (u *up) objects(applied []*config.Object) []*config.Object {
	byKey := map[config.Key]*config.Object{}
	for _, layer := range [][]*config.Object{u.dir.List(), applied} {
		for _, obj := range layer {
			byKey[obj.Key()] = obj
		}
	}
	out := make([]*config.Object, 0, len(byKey))
	for _, obj := range byKey {
		out = append(out, obj)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().String() < out[j].Key().String() })
	return out
}

// start runs the gateway and the manifest's replicas, then records the
// state and reports the status.
func (u *up) start(ctx context.Context) error {
	u.warned = map[string]bool{}
	var err error
	if u.gwIP, err = u.alloc.IP(gatewayNamespace + "/" + gatewayName); err != nil {
		return fmt.Errorf("ingress gateway: %w", err)
	}
	u.gateway, err = startProxy(u.proxyOptions("router", gatewayName, gatewayNamespace, u.gwIP, gatewayLabels, gatewaySA))
	if err != nil {
		return err
	}
	u.reconcile(ctx)
	u.started = true
	waitReady(ctx, u.gateway)
	st := u.status()
	if err := writeState(u.o.StateDir, &State{PID: pid(), Dir: u.o.Dir, AppliedDir: filepath.Join(u.o.StateDir, appliedDir), ControlPlane: u.cp.HTTPAddr().String()}); err != nil {
		return err
	}
	if u.o.OnReady != nil {
		u.o.OnReady(st)
	} else {
		st.WriteTable(u.out)
	}
	return nil
}

// loop reconciles after each change until ctx ends.
func (u *up) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.changes:
			u.reconcile(ctx)
		}
	}
}

// reconcile plans the configuration in force, hands the generated objects
// and weft apply's to weft-control, and starts, restarts (Workload
// changed) or stops replicas to match the plan.
func (u *up) reconcile(ctx context.Context) {
	applied := u.appliedObjects()
	objs := u.objects(applied)
	plan, problems, err := NewPlan(PlanOptions{Objects: objs, RootNamespace: u.mesh.GetRootNamespace(), Alloc: u.alloc})
	for _, p := range problems {
		if !u.warned[p.Error()] {
			u.warned[p.Error()] = true
			u.say("%v", p)
		}
	}
	if err != nil {
		u.say("the manifest cannot run: %v", err)
		return
	}
	u.cp.SetOverlay(controlplane.Overlay{Defaults: plan.Objects, Overrides: applied})
	want := map[string]*Replica{}
	for _, r := range plan.Replicas {
		want[r.Namespace+"/"+r.Name] = r
	}
	var stop []*running
	for k, run := range u.running {
		if r, ok := want[k]; !ok || r.Version != run.r.Version || r.IP != run.r.IP {
			stop = append(stop, run)
			delete(u.running, k)
			if ok {
				u.say("restarting %s: its Workload changed", run.r.Name)
			} else {
				u.say("stopping %s: no longer in the manifest", run.r.Name)
			}
		}
	}
	u.stopReplicas(stop)
	var start []*Replica
	for _, r := range plan.Replicas {
		if _, ok := u.running[r.Namespace+"/"+r.Name]; !ok {
			start = append(start, r)
		}
	}
	if u.started { // after the first start: announce
		for _, r := range start {
			u.say("starting %s on %s", r.Name, r.IP)
		}
	}
	u.startReplicas(ctx, start, width(plan.Replicas))
}

// startReplicas starts the sidecars, waits for their configuration (so
// that the apps' first calls find their routes), then the commands.
func (u *up) startReplicas(ctx context.Context, rs []*Replica, w int) {
	var started []*running
	for _, r := range rs {
		sc, err := startProxy(u.proxyOptions("sidecar", r.Name, r.Namespace, r.IP, r.Labels, r.ServiceAccount))
		if err != nil {
			u.say("%s: %v", r.Name, err)
			continue
		}
		run := &running{r: r, sidecar: sc}
		started = append(started, run)
		u.running[r.Namespace+"/"+r.Name] = run
	}
	for _, run := range started {
		waitReady(ctx, run.sidecar)
	}
	for _, run := range started {
		r := run.r
		c, err := u.spawn.startChild(childOptions{Name: r.Name, Argv: r.Command, Env: environ(r.Env), Dir: r.Dir, Self: u.o.Self, Out: u.out, Width: w})
		if err != nil {
			u.say("%s: %v", r.Name, err)
			continue
		}
		run.child = c
		go func() {
			<-c.done
			if !run.stopped.Load() {
				u.say("%s exited (%v); edit its Workload to restart it", r.Name, exitStatus(c.err))
			}
		}()
	}
}

// exitStatus describes how a command ended.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// stopReplicas stops commands (SIGTERM, then SIGKILL after the grace
// period), then their sidecars, all in parallel.
func (u *up) stopReplicas(rs []*running) {
	var wg sync.WaitGroup
	for _, run := range rs {
		run.stopped.Store(true)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if run.child != nil {
				run.child.stop(u.o.Grace)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*proxyDrain)
			defer cancel()
			run.sidecar.stop(ctx)
		}()
	}
	wg.Wait()
}

// stopAll stops every replica, then the gateway.
func (u *up) stopAll() {
	all := make([]*running, 0, len(u.running))
	for _, run := range u.running {
		all = append(all, run)
	}
	u.running = map[string]*running{}
	u.stopReplicas(all)
	if u.gateway != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*proxyDrain)
		defer cancel()
		u.gateway.stop(ctx)
	}
}

// proxyOptions are the options of an in-process proxy of this mesh.
func (u *up) proxyOptions(typ, name, ns, ip string, labels map[string]string, sa string) proxyOptions {
	return proxyOptions{
		Type: typ, Name: name, Namespace: ns, IP: ip, Labels: labels, ServiceAccount: sa,
		Outbound:  typ == "sidecar",
		XDS:       u.cp.XDSAddr().String(),
		CA:        u.cp.CA(),
		CAAddress: u.cp.SecureAddr().String(),
		RunDir:    filepath.Join(u.o.StateDir, runDir),
		DrainTime: proxyDrain,
		Logger:    u.o.Logger.With("proxy", name+"."+ns),
	}
}

// waitReady waits for a proxy's first configuration, for at most
// readyTimeout (a proxy that gets none keeps trying in the background).
func waitReady(ctx context.Context, p *proxy) {
	t := time.NewTimer(readyTimeout)
	defer t.Stop()
	select {
	case <-p.srv.Initialized():
	case <-ctx.Done():
	case <-t.C:
	}
}

// status reports what runs where.
func (u *up) status() *Status {
	st := &Status{
		Dir:       u.o.Dir,
		Dashboard: "http://" + u.cp.HTTPAddr().String() + "/dashboard/",
		XDS:       u.cp.XDSAddr().String(),
		CA:        u.cp.SecureAddr().String(),
		StateDir:  u.o.StateDir,
		Gateway:   GatewayStatus{IP: u.gwIP, Admin: "http://" + net.JoinHostPort(u.gwIP, strconv.Itoa(AdminPort))},
	}
	for _, l := range u.gateway.srv.ListenerAddrs() {
		if l.Addr != nil && l.Addr.Network() == "tcp" && l.Addr.String() != net.JoinHostPort(u.gwIP, strconv.Itoa(MetricsPort)) {
			st.Gateway.Listeners = append(st.Gateway.Listeners, l.Addr.String())
		}
	}
	sort.Strings(st.Gateway.Listeners)
	st.Try = tryRequests(u.objects(u.lastApplied), st.Gateway.Listeners)
	keys := make([]string, 0, len(u.running))
	for k := range u.running {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		run := u.running[k]
		ws := WorkloadStatus{Name: run.r.Name, Namespace: run.r.Namespace, Service: run.r.Service, IP: run.r.IP,
			Proxy: run.r.Outbound(), Admin: "http://" + run.r.Admin()}
		for _, p := range run.r.Ports {
			if ws.Ports == nil {
				ws.Ports = map[string]int{}
			}
			ws.Ports[p.Name] = p.App
		}
		if run.child != nil {
			ws.PID = run.child.Pid()
		}
		st.Workloads = append(st.Workloads, ws)
	}
	return st
}

// say writes one of weft up's messages.
func (u *up) say(format string, args ...any) {
	fmt.Fprintf(u.out, "weft up: "+format+"\n", args...)
}

// width is the longest replica name (the output prefix's width).
func width(rs []*Replica) int {
	w := 0
	for _, r := range rs {
		w = max(w, len(r.Name))
	}
	return w
}
