//go:build tools

// Package tools records the command this module builds, so that `go mod tidy` keeps its
// requirements. The build tag keeps it out of every real build.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
