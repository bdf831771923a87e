/**
 * The SSH endpoint as a resource argument: lib/transport/endpoint.ts's `SshEndpoint` with Pulumi inputs
 * and its defaults left optional. One declaration for every provider that connects to a host.
 */
import * as pulumi from "@pulumi/pulumi";
import { SSH_ENDPOINT_DEFAULTS, SshEndpoint } from "../lib/transport/endpoint";

/** An SSH endpoint. */
export interface SshEndpointArgs {
  /** IPv4 address or host name. Required. */
  address: pulumi.Input<string>;
  /** TCP port. Default 22. */
  port?: pulumi.Input<number>;
  /** Login user. Default "root". */
  user?: pulumi.Input<string>;
  /** Pinned host key (OpenSSH public key line). Default none (each resource says whether it needs one). */
  hostKey?: pulumi.Input<string | undefined>;
}

/** The endpoint with its defaults filled (port 22, user root) and an empty host key dropped. */
export function endpointOutput(t: pulumi.Input<SshEndpointArgs>): pulumi.Output<SshEndpoint> {
  return pulumi.output(t).apply((o) => ({
    address: o.address,
    port: o.port ?? SSH_ENDPOINT_DEFAULTS.port,
    user: o.user ?? SSH_ENDPOINT_DEFAULTS.user,
    ...(o.hostKey ? { hostKey: o.hostKey } : {}),
  }));
}
