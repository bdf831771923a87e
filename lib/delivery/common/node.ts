/**
 * What delivery asks a running node, whichever way its image came: the image id it reports, a boot
 * marker to tell that it really rebooted, and the refresh probe.
 *
 * - `bootMarker` differs between two boots of a host: it combines the kernel's boot_id (a real reboot)
 *   with the start time of process 1 (a new PID namespace in the simulated lab, where the kernel is shared).
 * - `probeImageId` never throws and connects with a pinned (or recorded) host key only: a node presenting
 *   another key is reported as `hostKeyChanged`, not trusted.
 */
import type { Host } from "../../transport/host";
import { tailLines } from "../../transport/host";
import { SshCredentials, SshEndpoint, sshConnectOptions } from "../../transport/endpoint";
import { connectSsh, SshConnectOptions, SshHost } from "../../transport/ssh";

/** How SSH connections are made (tests substitute it). */
export type Connect = (o: SshConnectOptions) => Promise<SshHost>;

/** boot_id + start time of process 1 (see the file contract). Throws when it cannot be read. */
export async function bootMarker(host: Host, timeoutMs = 30_000): Promise<string> {
  const res = await host.run(["cat", "/proc/sys/kernel/random/boot_id", "/proc/1/stat"], { timeoutMs });
  if (res.code !== 0) throw new Error(`cannot read the boot marker on ${host.label}: ${tailLines(res.stderr, 5)}`);
  const [bootId, stat] = res.stdout.toString("utf8").split("\n");
  const afterComm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields after "(comm)": state=3 ... starttime=22 → index 22 - 3 = 19
  return `${bootId.trim()}/${afterComm[19] ?? "?"}`;
}

/** The image id a node reports (/etc/isar-k3s/image-id), or undefined when the file is absent. */
export const IMAGE_ID_FILE = "/etc/isar-k3s/image-id";

export async function readImageId(host: Host, timeoutMs = 30_000): Promise<string | undefined> {
  const argv = ["sh", "-c", 'if [ -f "$1" ]; then cat "$1"; else echo "<absent>"; fi', "sh", IMAGE_ID_FILE];
  const res = await host.run(argv, { timeoutMs });
  if (res.code !== 0) throw new Error(`cannot read ${IMAGE_ID_FILE} on ${host.label}: ${tailLines(res.stderr, 5)}`);
  const s = res.stdout.toString("utf8").trim();
  return s === "<absent>" ? undefined : s;
}

export interface ProbeResult {
  reachable: boolean;
  runningImageId?: string;
  /** The node presented another host key than the pinned / recorded one: re-installed outside this program. */
  hostKeyChanged?: boolean;
  error?: string;
}

/** Refresh: what does the node run now? Never throws. Without a host key to check against, says `noKey`. */
export async function probeImageId(
  ep: SshEndpoint,
  creds: SshCredentials,
  o: { timeoutSeconds: number; noKey: string; connect?: Connect },
): Promise<ProbeResult> {
  if (!ep.hostKey) return { reachable: false, error: o.noKey };
  let h: SshHost | undefined;
  try {
    h = await (o.connect ?? connectSsh)(
      sshConnectOptions(ep, creds, { retryForMs: o.timeoutSeconds * 1000, connectTimeoutMs: 10_000, operationTimeoutMs: 30_000 }),
    );
    return { reachable: true, runningImageId: await readImageId(h) };
  } catch (e) {
    if ((e as Error).name === "HostKeyMismatchError") return { reachable: true, hostKeyChanged: true, error: (e as Error).message };
    return { reachable: false, error: (e as Error).message };
  } finally {
    await h?.close();
  }
}
