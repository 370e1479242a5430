package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/weftmesh/weft/bench/internal/loadgen"
	"github.com/weftmesh/weft/bench/internal/procfs"
	"github.com/weftmesh/weft/bench/internal/report"
	"github.com/weftmesh/weft/bench/internal/supervise"
)

// cell is one measurement to take.
type cell struct {
	proto  loadgen.Protocol
	rate   int
	run    int
	target string // report.Direct or a proxy name
	up     upstream
}

func (c cell) dir(runDir string) string {
	return filepath.Join(runDir, fmt.Sprintf("%s-%d-%s-run%d", c.proto, c.rate, c.target, c.run))
}

// measure takes one measurement: for a proxy it starts a fresh instance on
// the proxy CPU, waits until a request through it succeeds, reads its idle
// memory, warms up, then runs the measured load between two CPU snapshots.
func (b *bench) measure(ctx context.Context, c cell) (report.Measurement, error) {
	dir := c.dir(b.opts.RunDir)
	if err := makeDirs(dir); err != nil {
		return report.Measurement{}, err
	}
	m := report.Measurement{Protocol: c.proto, Rate: c.rate, Target: c.target, Run: c.run,
		FortioJSON: filepath.Join(dir, "fortio.json")}
	var err error
	if m.PreRunBusyPct, err = b.waitQuiet(ctx); err != nil {
		return m, err
	}
	targetPort := c.up.port
	var proxy *supervise.Proc
	if c.target != report.Direct {
		p, port, err := b.startProxy(ctx, c, dir)
		if err != nil {
			return m, err
		}
		defer b.sup.Stop(p)
		proxy, targetPort = p, port
		pids, err := b.fs.Tree(proxy.PID())
		if err != nil {
			return m, err
		}
		mem, err := b.fs.Memory(pids)
		if err != nil {
			return m, err
		}
		m.IdleRSSKiB, _ = procfs.SumRSS(mem)
	}
	lo := b.loadOptions(c, targetPort, dir)
	if b.opts.Warmup > 0 {
		warm := lo
		warm.Duration, warm.JSONPath, warm.LogPath = b.opts.Warmup, filepath.Join(dir, "warmup.json"), filepath.Join(dir, "warmup.log")
		if _, err := loadgen.Run(ctx, warm); err != nil {
			return m, fmt.Errorf("warm-up: %w", err)
		}
	}
	before, err := b.snapshot(proxy, c.up.proc)
	if err != nil {
		return m, err
	}
	res, err := loadgen.Run(ctx, lo)
	if err != nil {
		return m, err
	}
	after, err := b.snapshot(proxy, c.up.proc)
	if err != nil {
		return m, err
	}
	m.Load = res
	served := float64(res.Served())
	upstreamNS := procfs.CPUDelta(before.upstream, after.upstream)
	m.UpstreamCPUUSPerRq = float64(upstreamNS) / 1e3 / served
	m.OtherCPUPct = b.otherCPU(before, after, upstreamNS+res.LoadGenCPUNanos+procfs.CPUDelta(before.proxy, after.proxy))
	m.LoadCPUPct = pct(upstreamNS+res.LoadGenCPUNanos, after.at.Sub(before.at))
	if proxy != nil {
		select {
		case <-proxy.Done():
			return m, fmt.Errorf("%s exited during the run (%v); see %s", c.target, proxy.ExitErr(), proxy.Spec.LogPath)
		default:
		}
		m.ProxyCPUNanos = procfs.CPUDelta(before.proxy, after.proxy)
		m.ProxyCPUUSPerRq = float64(m.ProxyCPUNanos) / 1e3 / served
		m.Processes = after.memory
		_, m.PeakRSSKiB = procfs.SumRSS(after.memory)
	}
	return m, nil
}

func (b *bench) loadOptions(c cell, port int, dir string) loadgen.Options {
	target := hostPort(port)
	if c.proto == loadgen.HTTP1 {
		target = httpURL(port)
	}
	return loadgen.Options{
		Fortio: b.opts.Fortio, Protocol: c.proto, Target: target, QPS: c.rate,
		Connections: b.opts.Connections, Duration: b.opts.Duration, Resolution: b.opts.Resolution,
		CPU: b.opts.LoadCPU, JSONPath: filepath.Join(dir, "fortio.json"), LogPath: filepath.Join(dir, "fortio.log"),
	}
}

// snapshot is the CPU time of the proxy's and the upstream's threads, the
// proxy's memory and the machine's busy time, at one instant.
type snapshot struct {
	proxy, upstream procfs.CPUSnapshot
	memory          []procfs.Memory
	system          procfs.SystemCPU
	at              time.Time
}

// otherCPU returns the busy time of the load and proxy CPUs between two
// snapshots that is not the benchmark's own (ours: the proxy, the upstream
// and the load generator), as a percentage of one CPU. On a quiet machine it
// is a few percent: kernel interrupt and softirq time not charged to any
// task, and the harness itself. Much more means other work shared the CPUs.
func (b *bench) otherCPU(before, after snapshot, ours uint64) float64 {
	busy := procfs.BusyDelta(before.system, after.system, cpuName(b.opts.LoadCPU), cpuName(b.opts.ProxyCPU))
	if busy < ours {
		return 0 // /proc/stat's 10 ms ticks against ns task clocks
	}
	return pct(busy-ours, after.at.Sub(before.at))
}

// snapshot reads the process trees of proxy (nil for the direct baseline)
// and upstream. The trees are re-read each time, so a process forked in
// between (none is expected) is counted.
func (b *bench) snapshot(proxy, up *supervise.Proc) (snapshot, error) {
	s := snapshot{at: time.Now()}
	var err error
	if s.system, err = b.fs.SystemCPU(); err != nil {
		return s, err
	}
	if s.upstream, err = b.treeCPU(up.PID()); err != nil {
		return s, err
	}
	if proxy == nil {
		return s, nil
	}
	pids, err := b.fs.Tree(proxy.PID())
	if err != nil {
		return s, err
	}
	if s.proxy, err = b.fs.CPU(pids); err != nil {
		return s, err
	}
	s.memory, err = b.fs.Memory(pids)
	return s, err
}

func (b *bench) treeCPU(pid int) (procfs.CPUSnapshot, error) {
	pids, err := b.fs.Tree(pid)
	if err != nil {
		return nil, err
	}
	return b.fs.CPU(pids)
}

// startProxy renders the proxy's config into dir, has the proxy check it,
// starts it on the proxy CPU and waits until a request through it succeeds
// (and, for weft-proxy, its admin /ready answers 200).
func (b *bench) startProxy(ctx context.Context, c cell, dir string) (*supervise.Proc, int, error) {
	k := kinds[c.target]
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	d := ConfigData{Dir: dir, Port: port, UpstreamPort: c.up.port, GRPC: c.proto == loadgen.GRPC, IstioStats: c.target == WeftProxyStats}
	if IsWeft(c.target) {
		if d.AdminPort, err = freePort(); err != nil {
			return nil, 0, err
		}
	}
	if c.target == WeftProxyHop || c.target == WeftProxyMTLS {
		if d.HopPort, err = freePort(); err != nil {
			return nil, 0, err
		}
	}
	if c.target == WeftProxyMTLS {
		d.CertDir = filepath.Join(b.opts.RunDir, "certs")
		if err := writeMeshCerts(d.CertDir); err != nil {
			return nil, 0, err
		}
	}
	cfg := filepath.Join(dir, k.config)
	if err := Render(b.opts.TemplatesDir, k.template, cfg, d); err != nil {
		return nil, 0, err
	}
	bin := b.opts.Binaries[c.target]
	if err := checkConfig(k, bin, cfg, d); err != nil {
		return nil, 0, err
	}
	path, args, env := k.command(bin, cfg, d)
	p, err := b.sup.Start(supervise.Spec{Name: c.target, Path: path, Args: args, Env: env,
		CPU: b.opts.ProxyCPU, LogPath: filepath.Join(dir, "stdout.log")})
	if err != nil {
		return nil, 0, err
	}
	if d.AdminPort != 0 {
		admin := "http://" + hostPort(d.AdminPort) + "/ready"
		if err := waitReady(ctx, c.target+" admin /ready", b.opts.ReadyTimeout, p, httpProbe(admin, -1)); err != nil {
			b.sup.Stop(p)
			return nil, 0, err
		}
	}
	ready := httpProbe(httpURL(port), staticFileSize)
	if d.GRPC {
		ready = grpcProbe(hostPort(port))
	}
	if err := waitReady(ctx, c.target, b.opts.ReadyTimeout, p, ready); err != nil {
		b.sup.Stop(p)
		return nil, 0, err
	}
	return p, port, nil
}
