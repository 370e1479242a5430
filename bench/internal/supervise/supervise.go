// Package supervise starts the benchmark's processes pinned to a CPU and
// makes sure every one of them is gone when the benchmark ends, also when it
// is interrupted.
//
// Each process runs in its own process group (so a multi-process server such
// as nginx, master and workers, is stopped as a whole) and receives SIGKILL
// if the benchmark process dies without cleaning up (Linux's parent-death
// signal).
package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Spec describes one process to start.
type Spec struct {
	Name string   // label used in errors and the log file name
	Path string   // executable
	Args []string // arguments after the executable
	Env  []string // extra environment entries (KEY=VALUE) on top of os.Environ
	// CPU pins the process (and what it forks) to this CPU with taskset.
	// Negative leaves the affinity as inherited.
	CPU int
	// LogPath receives stdout and stderr. Empty discards them.
	LogPath string
}

// Proc is a started process.
type Proc struct {
	Spec Spec
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been reaped
	err  error         // Wait's result, valid after done is closed
}

// PID is the process id. With CPU >= 0, taskset execs the program in place,
// so this is the program's own pid.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit status; valid once Done is closed.
func (p *Proc) ExitErr() error {
	<-p.done
	return p.err
}

// Supervisor tracks the processes it started. Safe for concurrent use.
type Supervisor struct {
	mu    sync.Mutex
	procs []*Proc
	grace time.Duration
}

// New returns a Supervisor that gives a process grace after SIGTERM before
// it sends SIGKILL.
func New(grace time.Duration) *Supervisor {
	return &Supervisor{grace: grace}
}

// Start starts spec. The caller stops it with Stop, or StopAll stops it.
func (s *Supervisor) Start(spec Spec) (*Proc, error) {
	path, args := spec.Path, spec.Args
	if spec.CPU >= 0 {
		args = append([]string{"-c", strconv.Itoa(spec.CPU), path}, args...)
		path = "taskset"
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var logFile *os.File
	if spec.LogPath != "" {
		f, err := os.Create(spec.LogPath)
		if err != nil {
			return nil, fmt.Errorf("start %s: log file: %w", spec.Name, err)
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Proc{Spec: spec, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Stop sends SIGTERM to p's process group, waits up to the grace period for
// p to exit, then sends SIGKILL to the group. Afterwards it kills what is
// left of the group (children that outlived their parent). It returns an
// error only if the process could not be reaped.
func (s *Supervisor) Stop(p *Proc) error {
	s.forget(p)
	pgid := p.PID() // Setpgid: the group id is the leader's pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("stop %s (pid %d): still running 5s after SIGKILL", p.Spec.Name, pgid)
		}
	}
	// Leftover group members (e.g. an nginx worker whose master died).
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: kill leftover group %d: %w", p.Spec.Name, pgid, err)
	}
	return nil
}

// StopAll stops every process still tracked, newest first, and returns the
// errors joined.
func (s *Supervisor) StopAll() error {
	s.mu.Lock()
	procs := append([]*Proc(nil), s.procs...)
	s.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, s.Stop(procs[i]))
	}
	return errors.Join(errs...)
}

// Running reports how many started processes have not been stopped.
func (s *Supervisor) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.procs)
}

func (s *Supervisor) forget(p *Proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.procs {
		if q == p {
			s.procs = append(s.procs[:i], s.procs[i+1:]...)
			return
		}
	}
}
