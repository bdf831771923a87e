/**
 * Seed 003's baseline files for every node image: the non-root deploy user with passwordless sudo,
 * sshd refusing root and passwords, and the node's data disks mounted before k3s.
 *
 * Contract:
 * - Pure and deterministic; no secret (public keys only). Paths are absolute inside the image.
 * - The deploy user is created at boot by systemd-sysusers (its uid is the image's business, so no
 *   file here is owned by it): its authorized_keys live root-owned under DEPLOY_KEYS_DIR, named by
 *   the sshd drop-in's AuthorizedKeysFile; a oneshot unit runs sysusers and tmpfiles before sshd.
 * - The sshd drop-in sorts first in /etc/ssh/sshd_config.d (sshd keeps the first value it reads), so
 *   no later drop-in can turn root logins or passwords back on.
 * - Data disks are native systemd mount units with `nofail` (local-fs.target does not wait for them)
 *   ordered before k3s; a missing device gives up after DATA_DISK_DEVICE_TIMEOUT, and the node still
 *   boots. `dataDiskStatus` turns `findmnt` output into one line per disk for the node's status.
 */
import { DataDisk, NodeSpec } from "../model/types";

export const SSHD_DROPIN_PATH = "/etc/ssh/sshd_config.d/00-isar-k3s.conf";
export const DEPLOY_KEYS_DIR = "/etc/ssh/isar-k3s/authorized_keys";
export const DEPLOY_USER_UNIT = "isar-k3s-deploy-user.service";
export const DATA_DISK_DEVICE_TIMEOUT = "30s";
/** Units a data disk is mounted before: the k3s server and agent services of the install script. */
export const K3S_UNITS = ["k3s.service", "k3s-agent.service"];

export function sudoersPath(user: string): string {
  // sudo skips files in sudoers.d whose names contain '.' or end in '~'.
  return `/etc/sudoers.d/isar-k3s-${user}`;
}

export function renderSshdDropIn(): string {
  return [
    "# isar-k3s (seed 003 baseline): key-only logins, no root. First file of sshd_config.d: sshd keeps",
    "# the first value it reads, so later files cannot loosen this.",
    "PermitRootLogin no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    `AuthorizedKeysFile ${DEPLOY_KEYS_DIR}/%u`,
    "",
  ].join("\n");
}

export function renderSudoers(user: string): string {
  return [
    `# isar-k3s: the deploy user runs every remote step as root with \`sudo -n\` (never a password prompt).`,
    `${user} ALL=(root) NOPASSWD: ALL`,
    "",
  ].join("\n");
}

export function renderSysusers(user: string): string {
  return [
    `# isar-k3s deploy user (created at boot by systemd-sysusers; locked password, key-only SSH).`,
    `u ${user} - "isar-k3s deploy user" /home/${user} /bin/sh`,
    "",
  ].join("\n");
}

export function renderTmpfiles(user: string): string {
  return [`# isar-k3s: the deploy user's home directory.`, `d /home/${user} 0750 ${user} ${user} -`, ""].join("\n");
}

export function renderDeployUserUnit(user: string): string {
  return [
    "[Unit]",
    `Description=isar-k3s deploy user ${user}`,
    "DefaultDependencies=no",
    "After=local-fs.target systemd-sysusers.service",
    "Before=ssh.service systemd-user-sessions.service",
    "",
    "[Service]",
    "Type=oneshot",
    "RemainAfterExit=yes",
    `ExecStart=/usr/bin/systemd-sysusers /etc/sysusers.d/isar-k3s-${user}.conf`,
    `ExecStart=/usr/bin/systemd-tmpfiles --create /etc/tmpfiles.d/isar-k3s-${user}.conf`,
    "",
  ].join("\n");
}

/** sshd starts only once the deploy user exists (a drop-in: no enablement symlink needed). */
export function renderSshWants(): string {
  return ["[Unit]", `Wants=${DEPLOY_USER_UNIT}`, `After=${DEPLOY_USER_UNIT}`, ""].join("\n");
}

/** `systemd-escape --path`: the unit name stem of an absolute path. */
export function systemdEscapePath(p: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, "").replace(/\/+/g, "/");
  if (trimmed === "") return "-";
  let out = "";
  for (let i = 0; i < trimmed.length; i++) {
    const c = trimmed[i];
    if (c === "/") out += "-";
    else if (/[A-Za-z0-9:_]/.test(c) || (c === "." && i > 0)) out += c;
    else out += Buffer.from(c, "utf8").reduce((s, b) => s + "\\x" + b.toString(16).padStart(2, "0"), "");
  }
  return out;
}

export function mountUnitName(d: DataDisk): string {
  return `${systemdEscapePath(d.mountPoint)}.mount`;
}

export function renderMountUnit(d: DataDisk): string {
  return [
    "[Unit]",
    `Description=isar-k3s data disk ${d.device} on ${d.mountPoint}`,
    `Before=${K3S_UNITS.join(" ")}`,
    "",
    "[Mount]",
    `What=${d.device}`,
    `Where=${d.mountPoint}`,
    `Type=${d.filesystem}`,
    // nofail: local-fs.target is not ordered after this mount, so a missing disk does not hold the boot.
    "Options=defaults,nofail",
    "",
  ].join("\n");
}

/** local-fs.target wants every data disk (the drop-in form of `systemctl enable`). */
export function renderDataDiskWants(disks: DataDisk[]): string {
  return ["# isar-k3s data disks: wanted, not required (nofail).", "[Unit]", ...disks.map((d) => `Wants=${mountUnitName(d)}`), ""].join("\n");
}

/** What fstab's x-systemd.device-timeout= does: stop waiting for a missing device after a while. */
export function renderDeviceTimeout(): string {
  return ["[Unit]", `JobRunningTimeoutSec=${DATA_DISK_DEVICE_TIMEOUT}`, ""].join("\n");
}

/** Path → content of the node's data disk units (empty without data disks). */
export function renderDataDiskFiles(node: NodeSpec): Record<string, string> {
  if (node.dataDisks.length === 0) return {};
  const out: Record<string, string> = {};
  for (const d of node.dataDisks) {
    out[`/etc/systemd/system/${mountUnitName(d)}`] = renderMountUnit(d);
    out[`/etc/systemd/system/${systemdEscapePath(d.device)}.device.d/isar-k3s-timeout.conf`] = renderDeviceTimeout();
  }
  out["/etc/systemd/system/local-fs.target.d/isar-k3s-data-disks.conf"] = renderDataDiskWants(node.dataDisks);
  return out;
}

/** argv listing the node's mounts (run as the deploy user: findmnt needs no root). */
export const FINDMNT_ARGV = ["findmnt", "--noheadings", "--raw", "--output", "TARGET,SOURCE,FSTYPE"];

/** findmnt --raw escapes blanks and backslashes as \xNN. */
function unescapeRaw(s: string): string {
  return s.replace(/\\x([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export interface DataDiskState {
  disk: DataDisk;
  ok: boolean;
  /** One line for the node's status: "data disk /dev/sda1 on /var/lib/longhorn: mounted (ext4)" or what is wrong and how to fix it. */
  line: string;
}

/** One status line per data disk of `node` ({name, dataDisks}) from FINDMNT_ARGV's output. */
export function dataDiskStatus(node: Pick<NodeSpec, "name" | "dataDisks">, findmntOutput: string): DataDiskState[] {
  const mounts = new Map<string, { source: string; fstype: string }>();
  for (const l of findmntOutput.split("\n")) {
    const [target, source, fstype] = l.trim().split(" ");
    if (target && source) mounts.set(unescapeRaw(target), { source: unescapeRaw(source), fstype: fstype ?? "" });
  }
  return node.dataDisks.map((disk) => {
    const m = mounts.get(disk.mountPoint);
    const head = `data disk ${disk.device} on ${disk.mountPoint}`;
    if (!m) {
      return {
        disk,
        ok: false,
        line: `${head}: MISSING, nothing is mounted there (the node booted without it: nofail). Check that the disk is attached and holds a ${disk.filesystem} file system, then \`sudo systemctl start ${mountUnitName(disk)}\` on ${node.name} or fix nodes.${node.name}.dataDisks`,
      };
    }
    if (m.fstype !== disk.filesystem) {
      return { disk, ok: false, line: `${head}: WRONG, ${m.source} (${m.fstype}) is mounted there instead of a ${disk.filesystem} file system` };
    }
    return { disk, ok: true, line: `${head}: mounted (${m.source}, ${m.fstype})` };
  });
}
