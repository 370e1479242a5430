package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/translate"
	"github.com/weftmesh/weft/internal/xds"
	"github.com/weftmesh/weft/internal/xds/xdstest"
)

// serverStats is what the server process reports about itself.
type serverStats struct {
	Event       string  `json:"event"`
	Addr        string  `json:"addr,omitempty"`
	PushSeconds float64 `json:"push_seconds,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	RSSBytes    int64   `json:"rss_bytes"`
	PeakRSS     int64   `json:"peak_rss_bytes"`
	HeapAlloc   uint64  `json:"heap_alloc_bytes"`
	HeapInuse   uint64  `json:"heap_inuse_bytes"`
	Goroutines  int     `json:"goroutines"`
	Connected   int     `json:"connected"`
	Error       string  `json:"error,omitempty"`
}

// serve runs the control-plane side: an xDS server with the mesh pushed,
// driven by commands on stdin ("stats", "push N" for a change of split
// service 0's weight to N, "quit"), answering one JSON line each on
// stdout.
func serve(f flags) error {
	mesh := xdstest.NewMesh(xdstest.MeshOptions{Services: f.services})
	var gen xds.Generator = xdstest.NewGenerator()
	if f.generator == "translate" {
		gen = translate.New(translate.Options{})
	}
	s, err := xds.New(xds.Options{Generator: gen, PushWorkers: f.workers, MaxPendingBytes: f.pending,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	start := time.Now()
	s.Push(mesh.Snapshot("v0", nil))
	out := json.NewEncoder(os.Stdout)
	st := stats(s)
	st.Event, st.Addr, st.PushSeconds = "ready", lis.Addr().String(), time.Since(start).Seconds()
	if err := out.Encode(st); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for version := 1; in.Scan(); version++ {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		var st serverStats
		switch cmd {
		case "stats":
			pprof.StopCPUProfile()
			st = stats(s)
		case "profile":
			pprof.StopCPUProfile()
			st = stats(s)
			st.Error = writeHeapProfile(arg)
		case "push":
			if f.cpuProf != "" {
				stop, err := startCPUProfile(f.cpuProf)
				if err != nil {
					st.Error = err.Error()
					break
				}
				defer stop()
			}
			w, err := strconv.Atoi(arg)
			if err != nil {
				st.Error = "push wants a weight: " + err.Error()
				break
			}
			t := time.Now()
			s.Push(mesh.Snapshot("v"+strconv.Itoa(version), map[int]uint32{0: uint32(w)}))
			d := time.Since(t)
			st = stats(s)
			st.PushSeconds = d.Seconds()
		case "quit":
			return nil
		default:
			st.Error = "unknown command " + cmd
		}
		st.Event = cmd
		if err := out.Encode(st); err != nil {
			return err
		}
	}
	return in.Err()
}

// startCPUProfile profiles the process until the next statistics (or the
// end).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapProfile writes the live heap to path ("" on success).
func writeHeapProfile(path string) string {
	f, err := os.Create(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return err.Error()
	}
	return ""
}

// stats measures the process after garbage collection (settled heap; two
// cycles, so that sync.Pool caches are released too).
func stats(s *xds.Server) serverStats {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rss, peak := procStatus()
	return serverStats{
		CPUSeconds: cpu.Seconds(), RSSBytes: rss, PeakRSS: peak,
		HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse,
		Goroutines: runtime.NumGoroutine(), Connected: s.Connected(),
	}
}

// procStatus returns VmRSS and VmHWM (peak) from /proc/self/status.
func procStatus() (rss, peak int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}
