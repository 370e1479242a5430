package localmesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// The state directory of a running weft up (StateDir) holds:
//
//	state.json  the running instance: its pid, directories and addresses
//	applied/    the files of `weft apply` (one file per object), emptied at start
//	run/        the sidecars' SDS sockets
const (
	stateFile  = "state.json"
	appliedDir = "applied"
	runDir     = "run"
)

// State is what a running weft up records for the CLI (`weft apply`).
type State struct {
	PID int `json:"pid"`
	// Dir is the mesh's directory (weft up -f).
	Dir string `json:"dir"`
	// AppliedDir receives `weft apply`'s files.
	AppliedDir string `json:"appliedDir"`
	// ControlPlane is weft-control's HTTP address (dashboard, debug).
	ControlPlane string `json:"controlPlane"`
}

// DefaultStateDir is weft up's state directory: weft/up under
// XDG_RUNTIME_DIR, else weft-UID/up under the temporary directory.
func DefaultStateDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "weft", "up")
	}
	return filepath.Join(os.TempDir(), "weft-"+strconv.Itoa(os.Getuid()), "up")
}

// ErrNotRunning says no weft up runs with a state directory.
var ErrNotRunning = errors.New("no weft up is running: start the mesh with `weft up -f DIR` first")

// ReadState returns the state of the weft up running with dir, or
// ErrNotRunning (no state, or its process is gone).
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, fmt.Errorf("weft up's state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("weft up's state %s: %w (remove it if no weft up is running)", filepath.Join(dir, stateFile), err)
	}
	if !alive(st.PID) {
		return nil, ErrNotRunning
	}
	return &st, nil
}

// alive reports whether a process exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// prepareState checks that no other weft up uses dir, then creates it with
// an empty applied/ and run/.
func prepareState(dir string) error {
	if st, err := ReadState(dir); err == nil {
		return fmt.Errorf("weft up is already running (pid %d, %s): stop it first, or pass another --state-dir", st.PID, st.Dir)
	}
	for _, sub := range []string{appliedDir, runDir} {
		p := filepath.Join(dir, sub)
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		if err := os.MkdirAll(p, 0o700); err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
	}
	return nil
}

// writeState records st in dir (atomically).
func writeState(dir string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+stateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// removeState deletes the state file (at exit).
func removeState(dir string) { _ = os.Remove(filepath.Join(dir, stateFile)) }

// pid is this process's id.
func pid() int { return os.Getpid() }
