// Command xdsbench measures weft-control's xDS server with many proxies:
// N xdstest clients (SotW or delta ADS, acking like Envoy) connect to a
// server in a child process that serves a synthetic mesh (xdstest.Mesh:
// 1,000 services by default); it reports the time until every proxy has
// its whole initial configuration, the time for a one-VirtualService weight
// change to reach every proxy (p50/p99/max, from the moment the change is
// handed to the server's Push), the bytes each proxy received for each,
// and the server process's CPU seconds, RSS and heap per proxy.
//
//	go run ./internal/xds/xdsbench -proxies 500
//	go run ./internal/xds/xdsbench -proxies 500 -delta
//	go run ./internal/xds/xdsbench -generator translate   # the real translator
//	go run ./internal/xds/xdsbench -control bin/weft-control  # the real binary, YAML in, file write to proxies
//
// The clients decode only names and references (xdstest's load-generator
// mode), so that their CPU goes to the protocol rather than to
// unmarshalling; they run in this process, the server in the child.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/xds/xdstest"
)

type flags struct {
	proxies     int
	services    int
	delta       bool
	generator   string
	workers     int
	serve       bool
	timeout     time.Duration
	heapProf    string
	pending     int64
	cpuProf     string
	control     string
	controlArgs string
	settle      time.Duration
}

func main() {
	var f flags
	flag.IntVar(&f.proxies, "proxies", 500, "connected proxies")
	flag.IntVar(&f.services, "services", 1000, "services in the mesh (10 namespaces, 10 endpoints each, a tenth with a 90/10 VirtualService)")
	flag.BoolVar(&f.delta, "delta", false, "use the delta protocol instead of state of the world")
	flag.StringVar(&f.generator, "generator", "fake", "fake (xdstest.Generator) or translate (translate.Translator)")
	flag.IntVar(&f.workers, "workers", 0, "push workers (0: GOMAXPROCS, at most 8)")
	flag.Int64Var(&f.pending, "pending", 0, "server's MaxPendingBytes (0: default)")
	flag.StringVar(&f.cpuProf, "cpuprofile", "", "write the server's CPU profile of the route change to this file")
	flag.StringVar(&f.control, "control", "", "measure this weft-control binary end to end (config as YAML files, change by a file write) instead of an in-process server")
	flag.StringVar(&f.controlArgs, "control-args", "", "with -control: more weft-control flags (e.g. \"--log-level info\")")
	flag.DurationVar(&f.settle, "settle", 5*time.Second, "with -control: idle time before the settled RSS is read")
	flag.BoolVar(&f.serve, "serve", false, "internal: run the server side")
	flag.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after")
	flag.StringVar(&f.heapProf, "heapprofile", "", "write the server's heap profile to this file prefix (.synced, .changed)")
	flag.Parse()
	var err error
	switch {
	case f.serve:
		err = serve(f)
	case f.control != "":
		err = runControl(f)
	default:
		err = run(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdsbench:", err)
		os.Exit(1)
	}
}

// child is the server process.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *json.Decoder
}

func startChild(f flags) (*child, serverStats, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, serverStats{}, err
	}
	cmd := exec.Command(self, "-serve", "-services", fmt.Sprint(f.services), "-generator", f.generator, "-workers", fmt.Sprint(f.workers), "-pending", fmt.Sprint(f.pending), "-cpuprofile", f.cpuProf)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, serverStats{}, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, serverStats{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, serverStats{}, err
	}
	c := &child{cmd: cmd, in: in, out: json.NewDecoder(bufio.NewReader(out))}
	var ready serverStats
	if err := c.out.Decode(&ready); err != nil {
		return nil, serverStats{}, fmt.Errorf("server process: %w", err)
	}
	return c, ready, nil
}

func (c *child) ask(cmd string) (serverStats, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return serverStats{}, err
	}
	var st serverStats
	if err := c.out.Decode(&st); err != nil {
		return st, err
	}
	if st.Error != "" {
		return st, errors.New(st.Error)
	}
	return st, nil
}

func (c *child) stop() {
	_, _ = fmt.Fprintln(c.in, "quit")
	_ = c.in.Close()
	_ = c.cmd.Wait()
}

// proxy is one client and what the benchmark records of it.
type proxy struct {
	wait  func(context.Context, func(*xdstest.State) bool) error
	read  func(func(*xdstest.State))
	close func() error

	mu        sync.Mutex
	routeSeen string    // the route version to watch for
	updatedAt time.Time // when a route response with another version arrived
}

func (p *proxy) onResponse(r *xdstest.Response) {
	if r.TypeURL != xdstest.RouteType || r.NACKed {
		return
	}
	p.mu.Lock()
	if p.routeSeen != "" && r.Version != p.routeSeen && p.updatedAt.IsZero() {
		p.updatedAt = r.Received
	}
	p.mu.Unlock()
}

func (p *proxy) bytes() (total int64, byType map[string]int64) {
	byType = map[string]int64{}
	p.read(func(s *xdstest.State) {
		for url, ts := range s.Types {
			byType[url] = ts.Bytes
			total += ts.Bytes
		}
	})
	return total, byType
}

func connect(f flags, addr string, mesh *xdstest.Mesh, i int) (*proxy, error) {
	p := &proxy{}
	o := xdstest.Options{Address: addr, Node: mesh.Node(i), OnResponse: p.onResponse}
	if f.delta {
		c, err := xdstest.NewDelta(o)
		if err != nil {
			return nil, err
		}
		p.wait, p.read, p.close = c.Wait, c.Read, c.Close
		return p, nil
	}
	c, err := xdstest.NewADS(o)
	if err != nil {
		return nil, err
	}
	p.wait, p.read, p.close = c.Wait, c.Read, c.Close
	return p, nil
}

func run(f flags) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	srv, ready, err := startChild(f)
	if err != nil {
		return err
	}
	defer srv.stop()
	mesh := xdstest.NewMesh(xdstest.MeshOptions{Services: f.services})
	fmt.Printf("mesh: %d services, %d proxies, %s, generator %s; server pushed the mesh in %.3fs, heap %s\n",
		f.services, f.proxies, protocol(f), f.generator, ready.PushSeconds, mib(int64(ready.HeapAlloc)))

	proxies, initial, err := connectAll(ctx, f, ready.Addr, mesh)
	defer func() {
		for _, p := range proxies {
			_ = p.close()
		}
	}()
	if err != nil {
		return err
	}
	synced, err := srv.ask(statsCommand(f, ".synced"))
	if err != nil {
		return err
	}
	total, byType := sumBytes(proxies)
	fmt.Printf("initial: all %d proxies configured in %.3fs (p50 %.3fs, p99 %.3fs); %s per proxy (%s)\n",
		f.proxies, initial[len(initial)-1].Seconds(), pct(initial, 50).Seconds(), pct(initial, 99).Seconds(),
		kib(total/int64(f.proxies)), perType(byType, f.proxies))
	fmt.Printf("server: CPU %.2fs, RSS %s settled (peak %s), heap %s = %s per proxy, %d goroutines\n",
		synced.CPUSeconds, mib(synced.RSSBytes), mib(synced.PeakRSS), mib(int64(synced.HeapAlloc)),
		kib((int64(synced.HeapAlloc)-int64(ready.HeapAlloc))/int64(f.proxies)), synced.Goroutines)

	return change(ctx, f, srv, proxies, synced, total, byType)
}

// connectAll connects every proxy at once and waits for all to be
// configured; it returns the time each took, sorted.
func connectAll(ctx context.Context, f flags, addr string, mesh *xdstest.Mesh) ([]*proxy, []time.Duration, error) {
	proxies := make([]*proxy, f.proxies)
	took := make([]time.Duration, f.proxies)
	errs := make([]error, f.proxies)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range f.proxies {
		wg.Go(func() {
			p, err := connect(f, addr, mesh, i)
			if err != nil {
				errs[i] = err
				return
			}
			proxies[i] = p
			errs[i] = p.wait(ctx, (*xdstest.State).Synced)
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	var live []*proxy
	for _, p := range proxies {
		if p != nil {
			live = append(live, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return live, nil, fmt.Errorf("initial configuration: %w", err)
	}
	slices.Sort(took)
	return live, took, nil
}

// change pushes a one-VirtualService weight change and measures its
// delivery.
func change(ctx context.Context, f flags, srv *child, proxies []*proxy, before serverStats, bytesBefore int64, typesBefore map[string]int64) error {
	for _, p := range proxies {
		p.read(func(s *xdstest.State) {
			p.mu.Lock()
			p.routeSeen = s.Type(xdstest.RouteType).Version
			p.mu.Unlock()
		})
	}
	start := time.Now()
	pushed, err := srv.ask("push 50")
	if err != nil {
		return err
	}
	took := make([]time.Duration, len(proxies))
	for i, p := range proxies {
		err := p.wait(ctx, func(s *xdstest.State) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return !p.updatedAt.IsZero() && s.Type(xdstest.RouteType).Version != p.routeSeen
		})
		if err != nil {
			return fmt.Errorf("route change, proxy %d: %w", i, err)
		}
		p.mu.Lock()
		took[i] = p.updatedAt.Sub(start)
		p.mu.Unlock()
	}
	slices.Sort(took)
	total, byType := sumBytes(proxies)
	for url := range byType {
		byType[url] -= typesBefore[url]
	}
	fmt.Printf("route change: every proxy updated at p50 %.1fms, p99 %.1fms, max %.1fms (server Push %.1fms); %s per proxy (%s)\n",
		ms(pct(took, 50)), ms(pct(took, 99)), ms(took[len(took)-1]), pushed.PushSeconds*1000,
		kib((total-bytesBefore)/int64(len(proxies))), perType(byType, len(proxies)))
	after, err := srv.ask(statsCommand(f, ".changed"))
	if err != nil {
		return err
	}
	fmt.Printf("server: change cost %.3fs CPU; RSS %s settled (peak %s), heap %s\n",
		pushed.CPUSeconds-before.CPUSeconds, mib(after.RSSBytes), mib(after.PeakRSS), mib(int64(after.HeapAlloc)))
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("clients (this process): CPU %.2fs\n", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	return nil
}

// statsCommand asks for statistics, and a heap profile with -heapprofile.
func statsCommand(f flags, suffix string) string {
	if f.heapProf == "" {
		return "stats"
	}
	return "profile " + f.heapProf + suffix
}

func sumBytes(proxies []*proxy) (int64, map[string]int64) {
	var total int64
	byType := map[string]int64{}
	for _, p := range proxies {
		t, bt := p.bytes()
		total += t
		for url, n := range bt {
			byType[url] += n
		}
	}
	return total, byType
}

func perType(byType map[string]int64, n int) string {
	s := ""
	for _, t := range []struct{ name, url string }{{"cds", xdstest.ClusterType}, {"eds", xdstest.EndpointType}, {"lds", xdstest.ListenerType}, {"rds", xdstest.RouteType}} {
		if s != "" {
			s += ", "
		}
		s += t.name + " " + kib(byType[t.url]/int64(n))
	}
	return s
}

func protocol(f flags) string {
	if f.delta {
		return "delta ADS"
	}
	return "SotW ADS"
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func kib(n int64) string         { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }
func mib(n int64) string         { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
