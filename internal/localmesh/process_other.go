//go:build unix && !linux

package localmesh

import "syscall"

// sysProcAttr puts a child in its own process group; without Linux's
// Pdeathsig, a child outlives a weft up that is killed with SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
