/**
 * The SSH endpoint: the one shape every layer uses for "where and as whom to log in" (the fleet model's
 * nodes and BMCs, the delivery and k3s providers' inputs), and the one function that turns it into the
 * transport's connection options.
 *
 * Contract:
 * - `SshEndpoint` is the only declaration of an endpoint. The fleet model holds the address beside the
 *   login (`SshLogin` = the endpoint without its address); providers take `SshEndpoint` as input.
 * - `SSH_ENDPOINT_DEFAULTS` are the defaults for a port or user left out, used by the config parser and
 *   by the providers' checks alike (`readEndpoint`, the one check of an endpoint given to a provider).
 * - `sshConnectOptions` only maps fields (address → host) and adds the credentials; timeouts and host key
 *   policy are the caller's explicit choice, so no default hides in here.
 */
import type { SshConnectOptions } from "./ssh";
import { isOpenSshPublicKey } from "./syntax";

export interface SshEndpoint {
  /** IPv4 address or host name. */
  address: string;
  /** TCP port. Default 22 (SSH_ENDPOINT_DEFAULTS). */
  port: number;
  /** Login user; non-root users need passwordless sudo where root is needed. Default "root". */
  user: string;
  /** Pinned host key, an OpenSSH public key line ("ssh-ed25519 AAAA..."); absent = not pinned. */
  hostKey?: string;
}

/** The login part of an endpoint, for records that keep the address beside it (the fleet model's nodes and BMCs). */
export type SshLogin = Omit<SshEndpoint, "address">;

/** Defaults of an endpoint's optional fields. */
export const SSH_ENDPOINT_DEFAULTS = { port: 22, user: "root" } as const;

/** How to authenticate: a private key (a secret, kept in memory) or an ssh-agent socket. */
export interface SshCredentials {
  /** Private key text (OpenSSH or PEM). */
  privateKey?: string;
  /** ssh-agent socket. */
  agent?: string;
}

/** What a caller decides per connection: everything of SshConnectOptions but the endpoint and the credentials. */
export type ConnectPolicy = Omit<SshConnectOptions, "host" | "port" | "user" | "hostKey" | "privateKey" | "agent">;

/** Connection options for `connectSsh` from an endpoint, credentials and the caller's policy (timeouts, pin path). */
export function sshConnectOptions(ep: SshEndpoint, creds: SshCredentials, policy: ConnectPolicy): SshConnectOptions {
  return {
    host: ep.address,
    port: ep.port,
    user: ep.user,
    hostKey: ep.hostKey,
    privateKey: creds.privateKey,
    agent: creds.agent,
    ...policy,
  };
}

/** "user@address:port", as messages name an endpoint. */
export function endpointLabel(ep: Pick<SshEndpoint, "address" | "port" | "user">): string {
  return `${ep.user}@${ep.address}:${ep.port}`;
}

/**
 * Read an endpoint from a provider's raw input, filling the defaults. Problems (property path, reason)
 * are pushed to `problems`; the returned endpoint is usable either way.
 */
export function readEndpoint(v: unknown, path: string, requireHostKey: boolean, problems: { property: string; reason: string }[]): SshEndpoint {
  const isObj = typeof v === "object" && v !== null && !Array.isArray(v);
  const o = (isObj ? v : {}) as Record<string, unknown>;
  const str = (x: unknown) => (typeof x === "string" && x !== "" ? x : undefined);
  if (!isObj) problems.push({ property: path, reason: "must be an object { address, port, user, hostKey? }" });
  const address = str(o.address) ?? "";
  if (!address) problems.push({ property: `${path}.address`, reason: "is required (IPv4 address or host name)" });
  const port = o.port === undefined ? SSH_ENDPOINT_DEFAULTS.port : Number(o.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) problems.push({ property: `${path}.port`, reason: `${JSON.stringify(o.port)} is not a TCP port` });
  const user = str(o.user) ?? SSH_ENDPOINT_DEFAULTS.user;
  const hostKey = str(o.hostKey);
  if (hostKey !== undefined && !isOpenSshPublicKey(hostKey))
    problems.push({ property: `${path}.hostKey`, reason: 'is not an OpenSSH public key line ("ssh-ed25519 AAAA...")' });
  if (requireHostKey && hostKey === undefined)
    problems.push({ property: `${path}.hostKey`, reason: "is required: pin the host's public key (ssh-keyscan, checked out of band)" });
  return { address, port, user, ...(hostKey ? { hostKey: hostKey.trim() } : {}) };
}
