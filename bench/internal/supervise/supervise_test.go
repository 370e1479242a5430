package supervise

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// groupAlive reports whether any process is left in process group pgid.
func groupAlive(pgid int) bool {
	return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval under a deadline
	}
}

func TestStopKillsTheWholeGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		// The shell and two children exit on SIGTERM.
		{"exits on SIGTERM", "sleep 60 & sleep 60 & wait"},
		// SIG_IGN is inherited across exec: nothing here dies of SIGTERM,
		// so Stop must fall back to SIGKILL after the grace period.
		{"ignores SIGTERM", "trap '' TERM; sleep 60 & sleep 60 & wait; wait"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(200 * time.Millisecond)
			p, err := s.Start(Spec{Name: "group", Path: "sh", Args: []string{"-c", tt.script}, CPU: -1})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Kill(-p.PID(), syscall.SIGKILL) })
			if s.Running() != 1 {
				t.Fatalf("Running = %d, want 1", s.Running())
			}
			if err := s.Stop(p); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the process was reaped")
			}
			// Orphaned children are reparented and reaped by init; wait
			// until the group is empty.
			waitFor(t, "the process group to be empty", func() bool { return !groupAlive(p.PID()) })
			if s.Running() != 0 {
				t.Fatalf("Running = %d after Stop, want 0", s.Running())
			}
		})
	}
}

func TestStartPinsToCPUAndLogs(t *testing.T) {
	log := filepath.Join(t.TempDir(), "out.log")
	s := New(time.Second)
	p, err := s.Start(Spec{Name: "pinned", Path: "sh", Args: []string{"-c", "echo hello; exec sleep 60"},
		Env: []string{"WEFTBENCH_TEST=1"}, CPU: 0, LogPath: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.StopAll() })
	// taskset execs in place, so the pid is the program's: its affinity
	// and environment are visible in /proc.
	waitFor(t, "the program to exec", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/comm")
		return strings.TrimSpace(string(b)) == "sleep"
	})
	status, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "Cpus_allowed_list:\t0\n") {
		t.Fatalf("process not pinned to CPU 0:\n%s", status)
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "WEFTBENCH_TEST=1\x00") {
		t.Fatal("extra environment entry missing")
	}
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello\n" {
		t.Fatalf("log = %q, want %q", out, "hello\n")
	}
}

func TestStopAllStopsEverything(t *testing.T) {
	s := New(time.Second)
	var procs []*Proc
	for i := 0; i < 3; i++ {
		p, err := s.Start(Spec{Name: "sleep", Path: "sleep", Args: []string{"60"}, CPU: -1})
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	if err := s.StopAll(); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		select {
		case <-p.Done():
		default:
			t.Fatalf("pid %d still running after StopAll", p.PID())
		}
		if p.ExitErr() == nil {
			t.Fatalf("pid %d: want a signal exit status, got success", p.PID())
		}
	}
	if s.Running() != 0 {
		t.Fatalf("Running = %d, want 0", s.Running())
	}
}

func TestStartErrors(t *testing.T) {
	s := New(time.Second)
	if _, err := s.Start(Spec{Name: "missing", Path: "/nonexistent/binary", CPU: -1}); err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
	if _, err := s.Start(Spec{Name: "badlog", Path: "true", CPU: -1, LogPath: "/nonexistent/dir/log"}); err == nil {
		t.Fatal("Start with an unwritable log path succeeded")
	}
	if s.Running() != 0 {
		t.Fatalf("Running = %d after failed starts, want 0", s.Running())
	}
}
