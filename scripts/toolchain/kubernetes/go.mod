// Wrapper module that builds pulumi-resource-kubernetes outside its repository, from the Go
// module proxy. scripts/pulumi-toolchain.sh builds in a copy of this folder into which it copies
// the provider's cmd/pulumi-resource-kubernetes (main.go, generate.go, schema.json, ...), then runs
// `VERSION=<version> go run generate.go` to write the *-embed.json files the module zip lacks.
module isar-k3s.local/toolchain/pulumi-resource-kubernetes

go 1.24.7

require (
	// = tag v4.25.0 (commit f47bc2d6f199); the proxy serves it only under this pseudo-version.
	github.com/pulumi/pulumi-kubernetes/provider/v4 v4.0.0-20260115033456-f47bc2d6f199
	// Takes the place of the provider's `sdk/v4 => ../sdk` replace.
	github.com/pulumi/pulumi-kubernetes/sdk/v4 v4.25.0
)
