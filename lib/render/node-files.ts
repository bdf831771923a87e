/**
 * The files that make a node's image its own: everything composed on top of the ISAR base rootfs.
 *
 * Contract:
 * - Pure and deterministic: same fleet and node, same list (sorted by path, stable content).
 * - Holds no secret: no cluster token, no private key. The k3s config references a token file that
 *   is uploaded at join time. Everything here may end up in the world-readable Nix store.
 * - `digest` is a sha256 over paths, modes and contents, so callers can tell exactly which node's
 *   image inputs changed (and preview can say why).
 */
import { createHash } from "crypto";
import { Fleet, NodeSpec } from "../model/types";
import { DeploymentPlan } from "../plan/plan";
import { K3S_CONFIG_PATH, renderK3sConfig } from "./k3s-config";
import { renderNetworkd } from "./networkd";
import { FIREWALL_ENABLE_PATH, FIREWALL_PATH, renderFirewall, renderFirewallEnable } from "./firewall";
import {
  DEPLOY_KEYS_DIR,
  DEPLOY_USER_UNIT,
  SSHD_DROPIN_PATH,
  renderDataDiskFiles,
  renderDeployUserUnit,
  renderSshWants,
  renderSshdDropIn,
  renderSudoers,
  renderSysusers,
  renderTmpfiles,
  sudoersPath,
} from "./baseline";

export interface NodeFile {
  /** Absolute path inside the node's root filesystem. */
  path: string;
  content: string;
  /** Octal permission bits, e.g. 0o644. */
  mode: number;
  /** Owner uid/gid inside the image (0 for root). */
  uid: number;
  gid: number;
}

/** Home directory of the deploy user inside the image. */
export function homeOf(user: string): string {
  return user === "root" ? "/root" : `/home/${user}`;
}

export function renderNodeFiles(fleet: Fleet, plan: DeploymentPlan, node: NodeSpec): NodeFile[] {
  const files: NodeFile[] = [];
  const add = (path: string, content: string, mode = 0o644) => files.push({ path, content, mode, uid: 0, gid: 0 });
  add(K3S_CONFIG_PATH, renderK3sConfig(fleet, plan, node), 0o600);
  add("/etc/k3s-role", `${node.role}\n`);
  add("/etc/hostname", `${node.hostname}\n`);
  // SWUpdate's hardware compatibility file: "<board> <revision>".
  add("/etc/hwrevision", `${node.hardware} ${node.hwRevision}\n`);
  for (const [path, content] of Object.entries(renderNetworkd(fleet.network, node))) add(path, content);
  // Seed 003 baseline: the deploy user (created at boot, keys root-owned), sshd without root or
  // passwords, the role's firewall, the data disks.
  const user = fleet.deployUser;
  add(`${DEPLOY_KEYS_DIR}/${user}`, fleet.authorizedKeys.map((k) => `${k}\n`).join(""), 0o644);
  add(SSHD_DROPIN_PATH, renderSshdDropIn());
  add(sudoersPath(user), renderSudoers(user), 0o440);
  add(`/etc/sysusers.d/isar-k3s-${user}.conf`, renderSysusers(user));
  add(`/etc/tmpfiles.d/isar-k3s-${user}.conf`, renderTmpfiles(user));
  add(`/etc/systemd/system/${DEPLOY_USER_UNIT}`, renderDeployUserUnit(user));
  add("/etc/systemd/system/ssh.service.d/isar-k3s.conf", renderSshWants());
  add(FIREWALL_PATH, renderFirewall(fleet, node), 0o755);
  add(FIREWALL_ENABLE_PATH, renderFirewallEnable());
  for (const [path, content] of Object.entries(renderDataDiskFiles(node))) add(path, content);
  add(
    "/etc/isar-k3s/node.json",
    JSON.stringify(
      {
        name: node.name,
        hostname: node.hostname,
        role: node.role,
        arch: node.arch,
        hardware: node.hardware,
        hwRevision: node.hwRevision,
        cluster: fleet.clusterName,
        k3sVersion: fleet.k3s.version,
      },
      null,
      2,
    ) + "\n",
  );
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** sha256 over (path, mode, uid, gid, content) of every file, in order. */
export function nodeFilesDigest(files: NodeFile[]): string {
  const h = createHash("sha256");
  for (const f of files) {
    h.update(`${f.path}\0${f.mode.toString(8)}\0${f.uid}:${f.gid}\0${Buffer.byteLength(f.content)}\0`);
    h.update(f.content);
  }
  return h.digest("hex");
}
