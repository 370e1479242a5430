//go:build unix

package sds

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner requires the directory to belong to the process's user.
func checkOwner(fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(st.Uid) != uid {
		return fmt.Errorf("owned by uid %d, not by this process's uid %d", st.Uid, uid)
	}
	return nil
}
