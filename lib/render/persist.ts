/**
 * The persistent data partition of a SWUpdate node (issue 15, item 4): an image update rewrites the root
 * file system, so whatever must outlive it lives on `delivery.dataDevice`, which no bundle writes.
 *
 * The image (these units, pure and deterministic) mounts the partition at DATA_MOUNT (ext4, nofail: the
 * node still boots and answers SSH without it), creates the directories k3s keeps its state in, and
 * bind-mounts them over the paths k3s uses (lab/k3s/BEHAVIOURS.md "What k3s keeps where"):
 *   /var/lib/rancher  k3s's data dir: server/db/etcd (the etcd member and its name), server/tls and
 *                     server/token, agent/ (kubelet client certificates);
 *   /etc/rancher      /etc/rancher/node/password (the node password whose hash the cluster keeps in
 *                     kube-system/<node>.node-password.k3s) and /etc/rancher/k3s (config, token file,
 *                     this program's join marker);
 * and binds the board's /etc/hwrevision from the partition (a file the board was provisioned with: no
 * image carries one, so a config typo can never rewrite it).
 * k3s (both units) requires the two k3s mounts: without its state it does not start, rather than start
 * as a new member under the old name.
 */
import type { NodeSpec } from "../model/types";
import { renderDeviceTimeout, systemdEscapePath } from "./baseline";

/** Mount point of the persistent data partition. */
export const DATA_MOUNT = "/var/lib/isar-k3s-data";
/** The oneshot unit that creates the bind sources on the partition. */
export const DATA_DIRS_UNIT = "isar-k3s-data-dirs.service";

/** What lives on the partition: source (relative to DATA_MOUNT) → path it is bound to. */
export const PERSISTENT_BINDS: { source: string; where: string; directory: boolean }[] = [
  { source: "rancher", where: "/var/lib/rancher", directory: true },
  { source: "etc-rancher", where: "/etc/rancher", directory: true },
  { source: "hwrevision", where: "/etc/hwrevision", directory: false },
];

const K3S_UNITS = ["k3s.service", "k3s-agent.service"];

function mountUnit(where: string): string {
  return `${systemdEscapePath(where)}.mount`;
}

/** Path → content of a SWUpdate node's persistent-partition units (empty for other nodes). */
export function renderPersistFiles(node: NodeSpec): Record<string, string> {
  if (node.delivery.method !== "swupdate") return {};
  const dev = node.delivery.dataDevice;
  const sys = "/etc/systemd/system";
  const out: Record<string, string> = {};
  const dataUnit = mountUnit(DATA_MOUNT);
  out[`${sys}/${dataUnit}`] = [
    "[Unit]",
    `Description=isar-k3s persistent data partition ${dev} (k3s state, board identity)`,
    `Before=${DATA_DIRS_UNIT} ${K3S_UNITS.join(" ")}`,
    "",
    "[Mount]",
    `What=${dev}`,
    `Where=${DATA_MOUNT}`,
    "Type=ext4",
    "Options=defaults,nofail",
    "",
  ].join("\n");
  out[`${sys}/${systemdEscapePath(dev)}.device.d/isar-k3s-timeout.conf`] = renderDeviceTimeout();
  const dirs = PERSISTENT_BINDS.filter((b) => b.directory).map((b) => `${DATA_MOUNT}/${b.source}`);
  out[`${sys}/${DATA_DIRS_UNIT}`] = [
    "[Unit]",
    "Description=isar-k3s directories on the persistent data partition",
    "DefaultDependencies=no",
    `RequiresMountsFor=${DATA_MOUNT}`,
    `ConditionPathIsMountPoint=${DATA_MOUNT}`,
    `Before=${PERSISTENT_BINDS.filter((b) => b.directory)
      .map((b) => mountUnit(b.where))
      .join(" ")}`,
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/bin/mkdir -p ${dirs.join(" ")}`,
    "",
  ].join("\n");
  for (const b of PERSISTENT_BINDS) {
    const src = `${DATA_MOUNT}/${b.source}`;
    out[`${sys}/${mountUnit(b.where)}`] = [
      "[Unit]",
      `Description=isar-k3s ${b.where} from the persistent data partition`,
      `RequiresMountsFor=${DATA_MOUNT}`,
      ...(b.directory ? [`Requires=${DATA_DIRS_UNIT}`, `After=${DATA_DIRS_UNIT}`] : [`ConditionPathExists=${src}`]),
      `Before=${K3S_UNITS.join(" ")}`,
      "",
      "[Mount]",
      `What=${src}`,
      `Where=${b.where}`,
      "Type=none",
      "Options=bind,nofail",
      "",
    ].join("\n");
  }
  out[`${sys}/local-fs.target.d/isar-k3s-persist.conf`] = [
    "# isar-k3s persistent data partition: wanted, not required (nofail).",
    "[Unit]",
    `Wants=${dataUnit} ${DATA_DIRS_UNIT} ${PERSISTENT_BINDS.map((b) => mountUnit(b.where)).join(" ")}`,
    "",
  ].join("\n");
  const needs = PERSISTENT_BINDS.filter((b) => b.directory)
    .map((b) => b.where)
    .join(" ");
  for (const u of K3S_UNITS)
    out[`${sys}/${u}.d/isar-k3s-persist.conf`] = [
      "# k3s runs only with its state from the persistent data partition (never as a new member under the old name).",
      "[Unit]",
      `RequiresMountsFor=${needs}`,
      "",
    ].join("\n");
  return out;
}
