/**
 * OpenSSH known_hosts text for the fleet's nodes: one line per node whose host key is known (pinned in
 * config or learned by its delivery), so a user can reach a node with strict host key checking:
 *   ssh -o UserKnownHostsFile=<file> -o StrictHostKeyChecking=yes ...
 * Format (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT): `host keytype base64` for port 22, `[host]:port keytype
 * base64` otherwise; the key's comment is dropped. Nodes without a key are left out, never guessed.
 */

export interface KnownHost {
  host: string;
  port?: number;
  /** OpenSSH public key line ("ssh-ed25519 AAAA... [comment]"), or undefined when not known. */
  hostKey?: string;
}

export function renderKnownHosts(hosts: KnownHost[]): string {
  const lines: string[] = [];
  for (const h of hosts) {
    if (!h.hostKey) continue;
    const [type, blob] = h.hostKey.trim().split(/\s+/);
    if (!type || !blob) throw new Error(`host key of ${h.host} is not an OpenSSH public key line: ${JSON.stringify(h.hostKey)}`);
    const port = h.port ?? 22;
    lines.push(`${port === 22 ? h.host : `[${h.host}]:${port}`} ${type} ${blob}`);
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}
