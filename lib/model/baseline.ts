/**
 * The fleet's security and storage baseline (seed 003): the non-root deploy user and per-node data disks.
 *
 * Contract (same as ./parse.ts, which calls these while it reads the stack config):
 * - Pure; every problem goes to `fail(path, message)` with its config path and how to fix it, and
 *   reading goes on with a usable fallback so all problems are reported at once.
 * - Data disks: `device` is a /dev/ path, `mountPoint` an absolute directory that is not a system
 *   directory, `filesystem` one of DATA_DISK_FILESYSTEMS; no device or mount point twice on a node,
 *   and never the device the node's root file system is delivered to.
 * - The deploy user is the only login of every node image (root logins are refused there), so a node's
 *   `ssh.user` defaults to it and may not name anybody else.
 */
import { DATA_DISK_FILESYSTEMS, DataDisk, DataDiskFilesystem, DEFAULT_ROOT_DEVICE, Delivery, Hardware, NodeSpec } from "./types";
import { describeValue as show, isUserName } from "./checks";

export interface ProblemSink {
  fail(path: string, message: string): void;
}

export const DEFAULT_DEPLOY_USER = "deploy";

/** Directories a data disk must not be mounted on (or under, for the virtual and boot-critical ones). */
const RESERVED_MOUNTS = ["/", "/bin", "/boot", "/etc", "/home", "/lib", "/lib64", "/root", "/sbin", "/usr", "/var", "/var/lib", "/nix"];
const RESERVED_TREES = ["/dev", "/proc", "/sys", "/run", "/tmp", "/etc", "/usr", "/boot"];

/** A /dev/ path of safe characters without "." or ".." components. */
export function isDevicePath(s: string): boolean {
  return (
    /^\/dev\/[A-Za-z0-9._:+@/-]+$/.test(s) &&
    !s.endsWith("/") &&
    s
      .split("/")
      .slice(2)
      .every((c) => c !== "" && c !== "." && c !== "..")
  );
}

/** An absolute directory path of safe characters, no empty, "." or ".." components, no trailing slash. */
export function isMountPointPath(s: string): boolean {
  if (s === "/") return true;
  return (
    /^\/[A-Za-z0-9._/-]+$/.test(s) &&
    s.length <= 255 &&
    s
      .split("/")
      .slice(1)
      .every((c) => c !== "" && c !== "." && c !== "..")
  );
}

/** The block devices that hold the node's own root file system (never usable as a data disk). */
export function rootDevices(hardware: Hardware, delivery: Delivery): string[] {
  if (delivery.method === "swupdate") return [delivery.rootDevice, ...(delivery.altRootDevice ? [delivery.altRootDevice] : [])];
  const d = DEFAULT_ROOT_DEVICE[hardware];
  return d ? [d] : [];
}

/** `nodes[i].dataDisks`: a list of {device, filesystem, mountPoint}. */
export function readDataDisks(r: ProblemSink, v: unknown, path: string, rootDevs: string[]): DataDisk[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    r.fail(path, `must be a list of {device, filesystem, mountPoint}, got ${show(v)}`);
    return [];
  }
  const out: DataDisk[] = [];
  const devices = new Map<string, number>();
  const mounts = new Map<string, number>();
  v.forEach((item, i) => {
    const p = `${path}[${i}]`;
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      r.fail(p, `must be an object {device, filesystem, mountPoint}, got ${show(item)}`);
      return;
    }
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!["device", "filesystem", "mountPoint"].includes(k))
        r.fail(`${p}.${k}`, "unknown key; expected one of device, filesystem, mountPoint (check the spelling)");
    }
    let ok = true;
    const str = (key: string, dflt?: string): string => {
      const s = o[key];
      if (s === undefined || s === null) {
        if (dflt !== undefined) return dflt;
        r.fail(`${p}.${key}`, "is required");
        ok = false;
        return "";
      }
      if (typeof s !== "string") {
        r.fail(`${p}.${key}`, `must be a string, got ${show(s)}`);
        ok = false;
        return "";
      }
      return s;
    };
    const device = str("device");
    if (device && !isDevicePath(device)) {
      r.fail(`${p}.device`, `${JSON.stringify(device)} is not a block device path: use /dev/<name> such as "/dev/sda1" or a stable "/dev/disk/by-id/..." name`);
      ok = false;
    } else if (device && rootDevs.includes(device)) {
      r.fail(`${p}.device`, `${JSON.stringify(device)} holds this node's root file system (the delivery writes it): name the data disk's own device`);
      ok = false;
    }
    const filesystem = str("filesystem", "ext4");
    if (!(DATA_DISK_FILESYSTEMS as readonly string[]).includes(filesystem)) {
      if (filesystem) r.fail(`${p}.filesystem`, `${JSON.stringify(filesystem)} is not one of ${DATA_DISK_FILESYSTEMS.join(" | ")}`);
      ok = false;
    }
    const mountPoint = str("mountPoint");
    if (mountPoint && !isMountPointPath(mountPoint)) {
      r.fail(
        `${p}.mountPoint`,
        `${JSON.stringify(mountPoint)} is not an absolute directory path: use [A-Za-z0-9._/-] without "..", "." or a trailing slash, e.g. "/var/lib/longhorn"`,
      );
      ok = false;
    } else if (mountPoint && (RESERVED_MOUNTS.includes(mountPoint) || RESERVED_TREES.some((t) => mountPoint.startsWith(`${t}/`)))) {
      r.fail(`${p}.mountPoint`, `${JSON.stringify(mountPoint)} is a system directory: mount the data disk on a directory of its own, e.g. "/var/lib/longhorn"`);
      ok = false;
    }
    for (const [map, key, what] of [
      [devices, device, "device"],
      [mounts, mountPoint, "mountPoint"],
    ] as const) {
      if (!key) continue;
      const first = map.get(key);
      if (first !== undefined) {
        r.fail(`${p}.${what}`, `duplicate ${what} ${JSON.stringify(key)} (also used by ${path}[${first}]): each data disk needs its own`);
        ok = false;
      } else map.set(key, i);
    }
    if (ok) out.push({ device, filesystem: filesystem as DataDiskFilesystem, mountPoint });
  });
  return out;
}

/**
 * `deployUser` (default "deploy"), and each node's `ssh.user` set to it. `rawNodes[i]` is the raw
 * config of `nodes[i]` (to tell an explicit `ssh.user` from the parser's default).
 */
export function applyDeployUser(r: ProblemSink, raw: unknown, rawNodes: unknown[], nodes: (NodeSpec | undefined)[]): string {
  let user = DEFAULT_DEPLOY_USER;
  if (raw !== undefined && raw !== null) {
    if (typeof raw !== "string" || !isUserName(raw)) {
      r.fail("deployUser", `${show(raw)} is not a valid user name: use 1–32 of lowercase letters, digits, '_' or '-', starting with a letter or '_'`);
    } else if (raw === "root") {
      r.fail("deployUser", '"root" cannot be the deploy user: every image refuses root logins (PermitRootLogin no); use a name of its own such as "deploy"');
    } else user = raw;
  }
  nodes.forEach((n, i) => {
    if (!n) return;
    const ssh = (rawNodes[i] as { ssh?: { user?: unknown } } | undefined)?.ssh;
    const given = ssh && typeof ssh === "object" ? ssh.user : undefined;
    if (given !== undefined && given !== null && given !== user) {
      r.fail(
        `nodes[${i}].ssh.user`,
        `${show(given)} cannot log in: the node's image has only the deploy user ${JSON.stringify(user)} (root logins are refused); remove ssh.user, or set deployUser if the deploy user should have another name`,
      );
    }
    n.ssh = { ...n.ssh, user };
  });
  return user;
}
