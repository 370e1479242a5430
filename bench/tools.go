//go:build tools

// Package bench pins the benchmark's tool dependencies (fortio) in this nested
// module, so the main module github.com/weftmesh/weft never depends on them.
package bench

import _ "fortio.org/fortio"
