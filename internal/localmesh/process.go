package localmesh

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// child is a workload's running command.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *prefixWriter
	done chan struct{} // closed once the process is reaped
	err  error         // the exit status, set before done closes
}

// Pid returns the process id (also the id of its process group).
func (c *child) Pid() int { return c.cmd.Process.Pid }

// stop ends the process group: SIGTERM, then SIGKILL after grace (or at
// once when grace is 0). It returns once the process is reaped.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.Pid(), syscall.SIGTERM) // the whole group: the command's own children too
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-c.Pid(), syscall.SIGKILL)
		<-c.done
	}
	_ = syscall.Kill(-c.Pid(), syscall.SIGKILL) // anything left in the group after the leader exited
}

// spawner starts child processes from one goroutine locked to its OS
// thread for its whole life: Linux sends Pdeathsig when the *thread* that
// forked a child ends, and Go may end threads, so the forking thread must
// be one that lives exactly as long as the spawner (closing it ends the
// thread, and so kills whatever is still running).
type spawner struct {
	reqs chan spawnReq
	wg   sync.WaitGroup
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

// start starts cmd on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// close ends the spawner's goroutine (after every child was stopped).
func (s *spawner) close() {
	close(s.reqs)
	s.wg.Wait()
}

// childOptions describe a command to run for a replica.
type childOptions struct {
	Name string
	Argv []string
	Env  []string // complete environment
	Dir  string
	// Self is the weft binary, run for Argv[0] "weft".
	Self string
	// Out receives the output, each line prefixed with the name.
	Out *syncWriter
	// Width pads the prefix (the longest name).
	Width int
}

// startChild starts a replica's command in its own process group, with
// Pdeathsig so that it does not outlive weft up (Linux).
func (s *spawner) startChild(o childOptions) (*child, error) {
	path, err := resolveCommand(o.Argv[0], o.Dir, o.Self)
	if err != nil {
		return nil, err
	}
	pw := &prefixWriter{prefix: fmt.Sprintf("%-*s | ", o.Width, o.Name), out: o.Out}
	cmd := &exec.Cmd{Path: path, Args: o.Argv, Env: o.Env, Dir: o.Dir, Stdout: pw, Stderr: pw, SysProcAttr: sysProcAttr()}
	if err := s.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Argv[0], err)
	}
	c := &child{name: o.Name, cmd: cmd, out: pw, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		pw.flush()
		close(c.done)
	}()
	return c, nil
}

// resolveCommand finds a command's program: "weft" is self, a path with
// a slash is relative to dir, a bare name is looked up in PATH.
func resolveCommand(name, dir, self string) (string, error) {
	switch {
	case name == "weft" && self != "":
		return self, nil
	case filepath.IsAbs(name):
		return name, nil
	case filepath.Base(name) != name:
		return filepath.Join(dir, name), nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("command %q is not in PATH: install it, or write its path in the Workload's command", name)
		}
		return "", err
	}
	return p, nil
}

// syncWriter serializes writes of whole lines from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// prefixWriter writes each complete line with a prefix, as docker compose
// does ("reviews-v2 | ..."); a last line without newline waits for flush.
type prefixWriter struct {
	prefix string
	out    *syncWriter
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.emit(p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// flush writes a pending partial line.
func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.emit(append(p.buf, '\n'))
		p.buf = nil
	}
}

func (p *prefixWriter) emit(line []byte) {
	out := make([]byte, 0, len(p.prefix)+len(line))
	out = append(append(out, p.prefix...), line...)
	_, _ = p.out.Write(out) // the terminal is gone: nothing better to do
}

// environ is weft up's environment with env applied on top (later
// entries win).
func environ(env []string) []string {
	return append(os.Environ(), env...)
}
