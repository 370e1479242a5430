package localmesh

import "syscall"

// sysProcAttr puts a child in its own process group (so that SIGTERM and
// SIGKILL reach its own children too) and has the kernel kill it if weft
// up dies without stopping it (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
