package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestParseStatPPID(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    int
		wantErr bool
	}{
		{"plain", "3476 (bash) S 3459 3476 3476 0 -1", 3459, false},
		{"name with spaces and parens", "42 (a b) c)) R 7 42 42", 7, false},
		{"no closing paren", "42 (bash S 7", 0, true},
		{"truncated", "42 (bash) S", 0, true},
		{"not a number", "42 (bash) S x 1", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatPPID([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseStatPPID(%q) = %d, %v; want %d, error %v", tt.stat, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseSchedstat(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"43769703 16566725 132\n", 43769703, false},
		{"0 0 0", 0, false},
		{"", 0, true},
		{"-5 1 1", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSchedstat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSchedstat(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Memory
		wantErr bool
	}{
		{"process", "Name:\tnginx\nUmask:\t0022\nVmHWM:\t    2196 kB\nVmRSS:\t    2100 kB\n", Memory{Name: "nginx", RSSKiB: 2100, HWMKiB: 2196}, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS\n", Memory{Name: "kthreadd"}, false},
		{"bad unit", "Name:\tx\nVmRSS:\t12 MB\n", Memory{}, true},
		{"bad number", "Name:\tx\nVmHWM:\tlots kB\n", Memory{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseStatus = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCPUDelta(t *testing.T) {
	tests := []struct {
		name       string
		start, end CPUSnapshot
		want       uint64
	}{
		{"same threads", CPUSnapshot{1: 100, 2: 50}, CPUSnapshot{1: 150, 2: 80}, 80},
		{"new thread counts in full", CPUSnapshot{1: 100}, CPUSnapshot{1: 110, 2: 40}, 50},
		{"exited thread is lost", CPUSnapshot{1: 100, 2: 50}, CPUSnapshot{1: 130}, 30},
		{"tid reused with a smaller count", CPUSnapshot{1: 100}, CPUSnapshot{1: 20}, 0},
	}
	for _, tt := range tests {
		if got := CPUDelta(tt.start, tt.end); got != tt.want {
			t.Errorf("%s: CPUDelta = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// fakeProc writes a /proc-like tree: pid -> ppid, with one schedstat per
// listed thread and a status file.
func fakeProc(t *testing.T, procs map[int]int, threads map[int]map[int]uint64, rss map[int]uint64) string {
	t.Helper()
	root := t.TempDir()
	for pid, ppid := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		write(t, filepath.Join(dir, "stat"), strconv.Itoa(pid)+" (p "+strconv.Itoa(pid)+") S "+strconv.Itoa(ppid)+" 1 1 0")
		write(t, filepath.Join(dir, "status"), "Name:\tp\nVmHWM:\t"+strconv.FormatUint(rss[pid]*2, 10)+" kB\nVmRSS:\t"+strconv.FormatUint(rss[pid], 10)+" kB\n")
		for tid, ns := range threads[pid] {
			write(t, filepath.Join(dir, "task", strconv.Itoa(tid), "schedstat"), strconv.FormatUint(ns, 10)+" 0 0\n")
		}
	}
	write(t, filepath.Join(root, "self", "stat"), "ignored: not a pid directory")
	return root
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFakeTreeCPUMemory(t *testing.T) {
	// 10 (master) -> 11 (worker) -> 12 (helper); 20 is unrelated.
	procs := map[int]int{10: 1, 11: 10, 12: 11, 20: 1}
	threads := map[int]map[int]uint64{10: {10: 5}, 11: {11: 100, 13: 7}, 12: {12: 1}, 20: {20: 1000}}
	rss := map[int]uint64{10: 3000, 11: 4000, 12: 100, 20: 9999}
	fs := New(fakeProc(t, procs, threads, rss))

	tree, err := fs.Tree(10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{10, 11, 12}; !reflect.DeepEqual(tree, want) {
		t.Fatalf("Tree(10) = %v, want %v", tree, want)
	}
	cpu, err := fs.CPU(tree)
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPUSnapshot{10: 5, 11: 100, 13: 7, 12: 1}); !reflect.DeepEqual(cpu, want) {
		t.Fatalf("CPU = %v, want %v", cpu, want)
	}
	mem, err := fs.Memory(tree)
	if err != nil {
		t.Fatal(err)
	}
	rssSum, hwmSum := SumRSS(mem)
	if rssSum != 7100 || hwmSum != 14200 {
		t.Fatalf("SumRSS = %d, %d; want 7100, 14200", rssSum, hwmSum)
	}
	// A pid that does not exist is left out, not an error.
	if mem, err := fs.Memory([]int{99}); err != nil || len(mem) != 0 {
		t.Fatalf("Memory(missing) = %v, %v; want empty, nil", mem, err)
	}
}

// TestLiveTree reads the real /proc: a shell with a child shows up as a
// two-process tree, and a busy child's CPU time grows.
func TestLiveTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do :; done & wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		fs := New("/proc")
		if tree, err := fs.Tree(cmd.Process.Pid); err == nil {
			for _, pid := range tree[1:] {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	fs := New("/proc")
	deadline := time.Now().Add(10 * time.Second)
	var tree []int
	for {
		var err error
		if tree, err = fs.Tree(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if len(tree) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling for the fork, bounded by the deadline
	}
	if len(tree) != 2 || tree[0] != cmd.Process.Pid {
		t.Fatalf("Tree(%d) = %v, want the shell and its busy child", cmd.Process.Pid, tree)
	}
	first, err := fs.CPU(tree)
	if err != nil {
		t.Fatal(err)
	}
	var delta uint64
	for time.Now().Before(deadline) {
		next, err := fs.CPU(tree)
		if err != nil {
			t.Fatal(err)
		}
		if delta = CPUDelta(first, next); delta >= uint64(20*time.Millisecond) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The child spins; 20 ms of CPU must accrue well within 10 s.
	if delta < uint64(20*time.Millisecond) {
		t.Fatalf("busy child ran %d ns in 10 s, want >= 20 ms", delta)
	}
	mem, err := fs.Memory(tree)
	if err != nil {
		t.Fatal(err)
	}
	if rss, hwm := SumRSS(mem); rss == 0 || hwm < rss {
		t.Fatalf("SumRSS = %d, %d: want rss > 0 and hwm >= rss", rss, hwm)
	}
}

func TestParseStat(t *testing.T) {
	data := "cpu  62273 0 13372 183634 442 0 264 53 0 0\n" +
		"cpu0 30959 1 6419 92389 36 2 115 26 7 0\n" +
		"cpu1 31314 0 6952 91244 405 0 148 27 0 0\n" +
		"intr 3229606 0 0\nctxt 1\n"
	got, err := ParseStat([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	// cpu0: user 30959 + nice 1 + system 6419 + irq 2 + softirq 115 + steal 26
	// ticks of 10 ms; idle, iowait and guest are left out.
	want := SystemCPU{
		"cpu":  (62273 + 13372 + 264 + 53) * 1e7,
		"cpu0": (30959 + 1 + 6419 + 2 + 115 + 26) * 1e7,
		"cpu1": (31314 + 6952 + 148 + 27) * 1e7,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseStat = %v, want %v", got, want)
	}
	if _, err := ParseStat([]byte("cpu0 1 2 3\n")); err == nil {
		t.Error("short cpu line accepted")
	}
	if d := BusyDelta(SystemCPU{"cpu0": 10, "cpu1": 5}, SystemCPU{"cpu0": 40, "cpu1": 25}, "cpu0", "cpu1"); d != 50 {
		t.Errorf("BusyDelta = %d, want 50", d)
	}
	if _, err := New("/proc").SystemCPU(); err != nil {
		t.Errorf("reading the real /proc/stat: %v", err)
	}
}
