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
