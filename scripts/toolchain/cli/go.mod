// Wrapper module that builds the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
// outside its repository, from the Go module proxy. Used by scripts/pulumi-toolchain.sh,
// which builds in a copy of this folder; keep the version here and PULUMI_CLI_VERSION there equal.
module isar-k3s.local/toolchain/pulumi-cli

go 1.26.6

require (
	github.com/pulumi/pulumi/pkg/v3 v3.274.1
	github.com/pulumi/pulumi/sdk/v3 v3.274.1
)

// From pkg/v3's own go.mod (its `sdk/v3 => ../sdk` only works inside the monorepo; the
// require above takes its place).
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
