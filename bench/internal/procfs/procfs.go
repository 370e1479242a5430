// Package procfs reads the per-process numbers the benchmark reports from
// Linux's /proc: on-CPU time per thread (schedstat), resident memory
// (VmRSS, VmHWM) and the process tree below a PID.
//
// CPU time comes from /proc/PID/task/TID/schedstat, whose first field is the
// time the thread ran on a CPU in nanoseconds (sum_exec_runtime). Unlike
// /proc/PID/stat's utime+stime it is not rounded to clock ticks, so a 15 s
// run at 1,000 req/s gives a per-request cost with sub-µs resolution.
package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FS reads one proc file system. The zero value is not usable; use New.
type FS struct {
	root string
}

// New returns an FS rooted at root ("/proc" on Linux; a test directory in tests).
func New(root string) FS {
	return FS{root: root}
}

// CPUSnapshot maps a thread id to the nanoseconds it has run on a CPU.
type CPUSnapshot map[int]uint64

// Tree returns pid and all of its descendants, pid first, then ascending.
// A process that exits while the tree is read is left out.
func (f FS) Tree(pid int) ([]int, error) {
	parents, err := f.parentMap()
	if err != nil {
		return nil, err
	}
	children := make(map[int][]int, len(parents))
	for child, parent := range parents {
		children[parent] = append(children[parent], child)
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	sort.Ints(tree[1:])
	return tree, nil
}

// parentMap reads the parent pid of every process in the file system.
func (f FS) parentMap() (map[int]int, error) {
	entries, err := os.ReadDir(f.root)
	if err != nil {
		return nil, fmt.Errorf("procfs: list %s: %w", f.root, err)
	}
	parents := make(map[int]int, len(entries))
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(f.root, e.Name(), "stat"))
		if err != nil {
			continue // exited between ReadDir and ReadFile
		}
		ppid, err := ParseStatPPID(data)
		if err != nil {
			return nil, fmt.Errorf("procfs: %s/%d/stat: %w", f.root, pid, err)
		}
		parents[pid] = ppid
	}
	return parents, nil
}

// ParseStatPPID returns the parent pid (field 4) of a /proc/PID/stat line.
// The command name (field 2) may hold spaces and parentheses, so parsing
// starts after its last ')'.
func ParseStatPPID(stat []byte) (int, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no ')' closing the command name in %q", stat)
	}
	fields := strings.Fields(string(stat[end+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("too few fields after the command name in %q", stat)
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return 0, fmt.Errorf("parent pid %q: %w", fields[1], err)
	}
	return ppid, nil
}

// CPU returns the on-CPU nanoseconds of every thread of every process in pids.
// Processes or threads that exit while they are read are left out.
func (f FS) CPU(pids []int) (CPUSnapshot, error) {
	snap := make(CPUSnapshot)
	for _, pid := range pids {
		tasks, err := os.ReadDir(filepath.Join(f.root, strconv.Itoa(pid), "task"))
		if err != nil {
			continue // the process exited
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join(f.root, strconv.Itoa(pid), "task", t.Name(), "schedstat"))
			if err != nil {
				continue // the thread exited
			}
			ns, err := ParseSchedstat(data)
			if err != nil {
				return nil, fmt.Errorf("procfs: %d/task/%d/schedstat: %w", pid, tid, err)
			}
			snap[tid] = ns
		}
	}
	return snap, nil
}

// ParseSchedstat returns the first field of a schedstat line: the time the
// task ran on a CPU, in nanoseconds.
func ParseSchedstat(data []byte) (uint64, error) {
	fields := strings.Fields(string(data))
	if len(fields) < 1 {
		return 0, fmt.Errorf("empty schedstat")
	}
	ns, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("run time %q: %w", fields[0], err)
	}
	return ns, nil
}

// CPUDelta returns the nanoseconds run between two snapshots, summed over
// the threads of end. A thread absent from start was created in between and
// counts in full. A thread that exited in between is lost (its time is not in
// end); the benchmark's proxies keep their threads for the whole run.
func CPUDelta(start, end CPUSnapshot) uint64 {
	var sum uint64
	for tid, ns := range end {
		before := start[tid]
		if ns >= before {
			sum += ns - before
		}
	}
	return sum
}

// Memory is the resident memory of one process, in KiB.
type Memory struct {
	PID    int    `json:"pid"`
	Name   string `json:"name"`
	RSSKiB uint64 `json:"rss_kib"` // VmRSS: resident now
	HWMKiB uint64 `json:"hwm_kib"` // VmHWM: peak resident since the process started
}

// Memory reads VmRSS and VmHWM of every process in pids. Processes that
// exit while they are read are left out.
func (f FS) Memory(pids []int) ([]Memory, error) {
	out := make([]Memory, 0, len(pids))
	for _, pid := range pids {
		data, err := os.ReadFile(filepath.Join(f.root, strconv.Itoa(pid), "status"))
		if err != nil {
			continue
		}
		m, err := ParseStatus(data)
		if err != nil {
			return nil, fmt.Errorf("procfs: %d/status: %w", pid, err)
		}
		m.PID = pid
		out = append(out, m)
	}
	return out, nil
}

// ParseStatus reads Name, VmRSS and VmHWM from a /proc/PID/status file.
// Kernel threads have no Vm lines; their memory reads as zero.
func ParseStatus(data []byte) (Memory, error) {
	var m Memory
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch key {
		case "Name":
			m.Name = value
		case "VmRSS", "VmHWM":
			kib, err := parseKiB(value)
			if err != nil {
				return Memory{}, fmt.Errorf("%s: %w", key, err)
			}
			if key == "VmRSS" {
				m.RSSKiB = kib
			} else {
				m.HWMKiB = kib
			}
		}
	}
	return m, sc.Err()
}

// parseKiB parses "1234 kB".
func parseKiB(v string) (uint64, error) {
	num, unit, _ := strings.Cut(v, " ")
	if strings.TrimSpace(unit) != "kB" {
		return 0, fmt.Errorf("unit of %q is not kB", v)
	}
	return strconv.ParseUint(num, 10, 64)
}

// SumRSS returns the summed VmRSS and VmHWM of ms, in KiB.
func SumRSS(ms []Memory) (rss, hwm uint64) {
	for _, m := range ms {
		rss += m.RSSKiB
		hwm += m.HWMKiB
	}
	return rss, hwm
}
