/**
 * OpenSSH known_hosts text for the fleet's nodes: one line per node whose host key is known (pinned in
 * config or learned by its delivery), so a user can reach a node with strict host key checking:
 *   ssh -o UserKnownHostsFile=<file> -o StrictHostKeyChecking=yes ...
 * Format (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): `host keytype base64` for port 22, `[host]:port keytype
 * base64` otherwise; the key's comment is dropped. Nodes without a key are left out, never guessed.
 */

import { SSH_ENDPOINT_DEFAULTS, SshEndpoint } from "../transport/endpoint";

/** An endpoint (lib/transport/endpoint.ts) whose host key, an OpenSSH public key line, may be unknown; port default 22. */
export type KnownHost = Pick<SshEndpoint, "address" | "hostKey"> & { port?: number };

export function renderKnownHosts(hosts: KnownHost[]): string {
  const lines: string[] = [];
  for (const h of hosts) {
    if (!h.hostKey) continue;
    const [type, blob] = h.hostKey.trim().split(/\s+/);
    if (!type || !blob) throw new Error(`host key of ${h.address} is not an OpenSSH public key line: ${JSON.stringify(h.hostKey)}`);
    const port = h.port ?? SSH_ENDPOINT_DEFAULTS.port;
    lines.push(`${port === 22 ? h.address : `[${h.address}]:${port}`} ${type} ${blob}`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}
