/**
 * A lab whose nodes run the k3s stand-in (lab/k3s) with one shared cluster datastore.
 *
 * If the lab harness offers it (a `k3sClusterDir` on the Lab), that is used. Otherwise this helper
 * sets it up itself: the stand-in's wrappers go into each node's /usr/local/bin (`k3s k3s-sim
 * install-into`), and a shared directory of this machine is bind-mounted read-write at /srv/k3s-cluster
 * inside each node's mount namespace (nsenter). The directory lives under the project's .lab/ because
 * the hosts see this machine's files outside their private trees (read-only), but not its /tmp.
 * `ensureK3s(name)` must run again after a node (re)boots: a new boot is a new mount namespace.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import type { Lab } from "../../lab/lab";
import type { LabHostSpec } from "../../lab/spec";
import { startLabRetry } from "../delivery/labutil";

const execP = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const K3S = path.join(ROOT, "lab/k3s/k3s");
const MOUNT = "/srv/k3s-cluster";

export interface K3sLab {
  lab: Lab;
  /** The shared cluster directory on this machine (join.log, argv.log, nodes/, faults.json). */
  clusterDir: string;
  /** Make sure the node has the stand-in and sees the shared directory (call after every boot). */
  ensureK3s(name: string): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startK3sLab(hosts: LabHostSpec[], labDir: string, sim: Record<string, string> = {}): Promise<K3sLab> {
  const lab = await startLabRetry({ hosts, bootDelayMs: 100, bmcdPort: 8080 }, labDir);
  const own = (lab as unknown as { k3sClusterDir?: string }).k3sClusterDir;
  if (own) return { lab, clusterDir: own, ensureK3s: async () => undefined, cleanup: async () => undefined };

  const shared = path.join(ROOT, ".lab", `k3s-test-${process.pid}-${crypto.randomBytes(3).toString("hex")}`);
  const clusterDir = path.join(shared, "cluster");
  fs.mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
  const env = { K3S_SIM_CLUSTER: MOUNT, K3S_SIM_JOIN_SECONDS: "1", ...sim };
  const ensureK3s = async (name: string) => {
    const info = lab.status().hosts[name];
    if (!info?.up || !info.initPid) throw new Error(`lab host ${name} is not up`);
    await execP(process.execPath, [K3S, "k3s-sim", "install-into", path.join(info.rootDir, "bin"), ...Object.entries(env).map(([k, v]) => `${k}=${v}`)]);
    const script = 'mkdir -p "$2" && { mountpoint -q "$2" || { mount --bind "$1" "$2" && mount -o remount,bind,rw "$2"; }; }';
    await execP("nsenter", ["-t", String(info.initPid), "-m", "-r", "-w", "--", "sh", "-c", script, "sh", clusterDir, MOUNT]);
  };
  for (const h of hosts) if (h.role === "node" && lab.status().hosts[h.name]?.up) await ensureK3s(h.name);
  return { lab, clusterDir, ensureK3s, cleanup: async () => fs.rmSync(shared, { recursive: true, force: true }) };
}
