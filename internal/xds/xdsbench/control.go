package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// runControl measures the weft-control binary (-control PATH) end to end:
// the mesh is written as Istio YAML to a temporary --config-dir, the
// proxies connect to the process, and the route change is a rewrite of one
// VirtualService file, timed from just before the write until each proxy
// received its new route. CPU and memory are the process's own, read from
// /proc: CPU from utime+stime, RSS "settled" after the process has been
// idle for -settle, and peak as VmHWM.
func runControl(f flags) error {
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "xdsbench-config-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mesh := xdstest.NewMesh(xdstest.MeshOptions{Services: f.services})
	if err := mesh.WriteYAML(dir, nil); err != nil {
		return err
	}
	xdsAddr, httpAddr := freeAddr(), freeAddr()
	if xdsAddr == "" || httpAddr == "" {
		return fmt.Errorf("no free loopback port")
	}
	args := append([]string{"--config-dir", dir, "--xds-address", xdsAddr, "--http-address", httpAddr, "--log-level", "warn"}, strings.Fields(f.controlArgs)...)
	cmd := exec.Command(f.control, args...)
	cmd.Stderr = os.Stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := waitReady(ctx, "http://"+httpAddr+"/ready"); err != nil {
		return err
	}
	fmt.Printf("mesh: %d services as YAML in %s, %d proxies, %s; weft-control %s ready (config loaded and translated) in %.3fs\n",
		f.services, dir, f.proxies, protocol(f), f.control, time.Since(started).Seconds())

	proxies, initial, err := connectAll(ctx, f, xdsAddr, mesh)
	defer func() {
		for _, p := range proxies {
			_ = p.close()
		}
	}()
	if err != nil {
		return err
	}
	total, byType := sumBytes(proxies)
	fmt.Printf("initial: all %d proxies configured in %.3fs after they connected (p50 %.3fs, p99 %.3fs); %s per proxy (%s)\n",
		f.proxies, initial[len(initial)-1].Seconds(), pct(initial, 50).Seconds(), pct(initial, 99).Seconds(),
		kib(total/int64(f.proxies)), perType(byType, f.proxies))
	cpuSynced := procCPU(pid)
	time.Sleep(f.settle) // measuring the idle process, not synchronising
	fmt.Printf("weft-control: CPU %.2fs until all configured (start-up included); RSS %s after %v idle, peak %s\n",
		cpuSynced, mib(procRSS(pid, "VmRSS")), f.settle, mib(procRSS(pid, "VmHWM")))
	if err := fetchProfile(f.heapProf, ".synced", httpAddr); err != nil {
		return err
	}

	for _, p := range proxies {
		p.read(func(s *xdstest.State) {
			p.mu.Lock()
			p.routeSeen = s.Type(xdstest.RouteType).Version
			p.mu.Unlock()
		})
	}
	cpuBefore := procCPU(pid)
	start := time.Now()
	if err := mesh.WriteVirtualService(dir, 0, 50); err != nil {
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
	after, afterByType := sumBytes(proxies)
	for url := range afterByType {
		afterByType[url] -= byType[url]
	}
	time.Sleep(f.settle) // measuring the idle process, not synchronising
	fmt.Printf("route change (file write → proxy received): p50 %.1fms, p99 %.1fms, max %.1fms; %s per proxy (%s)\n",
		ms(pct(took, 50)), ms(pct(took, 99)), ms(took[len(took)-1]),
		kib((after-total)/int64(len(proxies))), perType(afterByType, len(proxies)))
	fmt.Printf("weft-control: change cost %.2fs CPU (file watch, debounce, reload, translate, push); RSS %s after %v idle, peak %s\n",
		procCPU(pid)-cpuBefore, mib(procRSS(pid, "VmRSS")), f.settle, mib(procRSS(pid, "VmHWM")))
	if err := fetchProfile(f.heapProf, ".changed", httpAddr); err != nil {
		return err
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("clients (this process): CPU %.2fs\n", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
	return nil
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return ""
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls weft-control's /ready until it answers 200.
func waitReady(ctx context.Context, url string) error {
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("weft-control not ready at %s: %w", url, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procCPU returns a process's user+system CPU seconds (/proc/PID/stat
// fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	// The command name (field 2) is parenthesised and may hold spaces.
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// procRSS returns a memory field of /proc/PID/status (VmRSS, VmHWM) in
// bytes.
func procRSS(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
			return kb << 10
		}
	}
	return 0
}

// fetchProfile saves weft-control's heap profile (after a GC) to
// prefix+suffix; nothing without -heapprofile.
func fetchProfile(prefix, suffix, httpAddr string) error {
	if prefix == "" {
		return nil
	}
	resp, err := http.Get("http://" + httpAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(prefix+suffix, b, 0o644)
}
