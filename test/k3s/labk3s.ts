/**
 * A lab whose nodes run k3s (lab/k3s: k3s's supervisor and CLI over real etcd, kube-apiserver,
 * controller-manager, scheduler and kwok; the lab's own `k3s` spec option). `clusterDir` is the lab's
 * k3s observation log directory (join.log, argv.log); the cluster state is only in etcd.
 * `ensureK3s(name)` is kept for callers: the lab itself installs and boots k3s on every node.
 */
import type { Lab } from "../../lab/lab";
import type { LabHostSpec } from "../../lab/spec";
import { startLabRetry } from "../delivery/labutil";

export interface K3sLab {
  lab: Lab;
  /** The shared observation log directory on this machine (join.log, argv.log). */
  clusterDir: string;
  /** Nothing left to do: the lab installs k3s on every node and starts its units at each boot. */
  ensureK3s(name: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startK3sLab(hosts: LabHostSpec[], labDir: string, sim: Record<string, string> = {}): Promise<K3sLab> {
  const { K3S_SIM_JOIN_SECONDS, ...env } = sim;
  const lab = await startLabRetry({ hosts, bootDelayMs: 100, bmcdPort: 8080, k3s: { joinSeconds: Number(K3S_SIM_JOIN_SECONDS ?? 1), env } }, labDir);
  const clusterDir = lab.k3sClusterDir;
  if (!clusterDir) throw new Error("lab: k3s was not enabled");
  return { lab, clusterDir, ensureK3s: async () => undefined, cleanup: async () => undefined };
}

/**
 * Re-flash a slot node through its BMC's real `tpi` (power off, `flash --local` of `image`, power on),
 * then wait until it is up with its new host key: a fresh machine, no k3s state.
 */
export async function flashSlotNode(lab: Lab, image: { path: string; sha256: string }, name: string, slot: number): Promise<void> {
  const { connectSsh } = await import("../../lib/transport/ssh");
  const b = lab.hosts.bmc;
  const bmc = await connectSsh({ host: b.address, port: b.port, user: b.user, hostKey: b.hostKey, privateKey: lab.deployKey.privateKey });
  try {
    await bmc.run(["mkdir", "-p", "/mnt/sdcard"]);
    await bmc.upload(image.path, `/mnt/sdcard/${name}.img`, { sha256: image.sha256 });
    for (const argv of [
      ["tpi", "power", "off", "-n", String(slot)],
      ["tpi", "flash", "--local", "-n", String(slot), "-i", `/mnt/sdcard/${name}.img`],
      ["tpi", "power", "on", "-n", String(slot)],
    ]) {
      const r = await bmc.run(argv, { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    }
  } finally {
    await bmc.close();
  }
  const deadline = Date.now() + 60_000;
  while (!lab.status().hosts[name]?.up || !lab.hosts[name].hostKey) {
    if (Date.now() > deadline) throw new Error(`${name} did not boot after the flash`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
