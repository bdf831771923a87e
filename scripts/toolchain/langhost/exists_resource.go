// Added by isar-k3s (scripts/pulumi-toolchain.sh) to the upstream pulumi-language-nodejs v3.259.0
// sources before building them against sdk/v3 v3.274.1: that sdk's ResourceMonitorServer has an
// ExistsResource method (the @pulumi/pulumi 3.270+ Node SDK calls it), and the language host's
// monitor proxy must forward it to the engine like every other call.

package main

import (
	"context"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

func (p *monitorProxy) ExistsResource(
	ctx context.Context, req *pulumirpc.ExistsResourceRequest,
) (*pulumirpc.ExistsResourceResponse, error) {
	return p.target.ExistsResource(ctx, req)
}
