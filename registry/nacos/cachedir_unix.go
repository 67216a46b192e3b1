//go:build unix

package nacos

import (
	"io/fs"
	"syscall"
)

// unixModes: owners and mode bits say who may change a directory.
const unixModes = true

// owner is a file's owner uid.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
