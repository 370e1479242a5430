//go:build tools

// Package tools pins the etcd server for go mod tidy.
package tools

import _ "go.etcd.io/etcd/server/v3"
