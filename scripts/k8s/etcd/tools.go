//go:build tools

// Package tools records the commands this module builds, so `go mod tidy` keeps their requirements.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
