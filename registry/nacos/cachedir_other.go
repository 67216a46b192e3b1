//go:build !unix

package nacos

import "io/fs"

// unixModes: this system's permissions are not owners and mode bits.
const unixModes = false

func owner(fs.FileInfo) int { return -1 }
