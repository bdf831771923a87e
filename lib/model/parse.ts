/**
 * parseFleet: raw stack config (plain JSON values, as `pulumi.Config#getObject` returns them) in, a
 * validated `Fleet` with every default filled out, or a `FleetConfigError` listing every problem.
 *
 * Contract:
 * - Runs before any resource is registered, so `pulumi preview` fails fast and touches nothing.
 * - Reports all problems at once. Each problem names its config path (`nodes[2].address`) and says how
 *   to fix it. Paths are relative to the project's config namespace (`isar-k3s:`).
 * - Pure: no I/O, no clock, no Pulumi. Relative artifact paths stay relative; providers resolve them.
 */
import {
  ARCHES,
  ARTIFACT_KINDS,
  ArtifactPin,
  BmcSpec,
  Delivery,
  Fleet,
  HARDWARE,
  DEFAULT_ROOT_DEVICE,
  FLANNEL_BACKENDS,
  HARDWARE_ARCH,
  Hardware,
  HelmChart,
  MachineArtifacts,
  NETWORK_PROFILES,
  NodeSpec,
  ROLES,
  SIGNING_METHODS,
  SshLogin,
  Taint,
} from "./types";
import {
  isIPv4,
  isIPv4Cidr,
  isInterfaceName,
  isLabelKey,
  isLabelValue,
  isOpenSshPublicKey,
  isPort,
  isRfc1123Label,
  isRfc1123Subdomain,
  isUserName,
  isVersionString,
  normalizeSha256,
  describeValue as describe,
} from "./checks";
import { DELIVERY_DEFAULTS } from "./defaults";
import { SSH_ENDPOINT_DEFAULTS } from "../transport/endpoint";
import { applyDeployUser, readDataDisks, rootDevices } from "./baseline";

export interface ConfigProblem {
  path: string;
  message: string;
}

export class FleetConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(
      `isar-k3s: ${problems.length} problem${problems.length === 1 ? "" : "s"} in stack config:\n` +
        problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n"),
    );
    this.name = "FleetConfigError";
    this.problems = problems;
  }
}

/** The raw config keys of the `isar-k3s` namespace that make up a fleet. */
export interface RawFleetConfig {
  clusterName?: unknown;
  nodes?: unknown;
  bmcs?: unknown;
  artifacts?: unknown;
  isar?: unknown;
  k3s?: unknown;
  swupdate?: unknown;
  network?: unknown;
  delivery?: unknown;
  images?: unknown;
  authorizedKeys?: unknown;
  deployUser?: unknown;
  workloads?: unknown;
}

type Obj = Record<string, unknown>;

/** Collects problems while reading; every getter returns a usable fallback so reading goes on. */
class Reader {
  readonly problems: ConfigProblem[] = [];

  fail(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  obj(v: unknown, path: string, required: boolean): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(path, "is required: add this object to the stack config");
      return undefined;
    }
    if (typeof v !== "object" || Array.isArray(v)) {
      this.fail(path, `must be an object (key: value map), got ${describe(v)}`);
      return undefined;
    }
    return v as Obj;
  }

  arr(v: unknown, path: string): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.fail(path, `must be a list, got ${describe(v)}`);
      return [];
    }
    return v;
  }

  str(o: Obj | undefined, key: string, path: string, dflt?: string): string {
    const v = o?.[key];
    if (v === undefined || v === null) {
      if (dflt === undefined) {
        this.fail(`${path}.${key}`, "is required");
        return "";
      }
      return dflt;
    }
    if (typeof v !== "string") {
      this.fail(`${path}.${key}`, `must be a string, got ${describe(v)}`);
      return dflt ?? "";
    }
    return v;
  }

  optStr(o: Obj | undefined, key: string, path: string): string | undefined {
    const v = o?.[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") {
      this.fail(`${path}.${key}`, `must be a string, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  num(o: Obj | undefined, key: string, path: string, dflt: number | undefined, min: number, max: number): number {
    const v = o?.[key];
    if (v === undefined || v === null) {
      if (dflt === undefined) {
        this.fail(`${path}.${key}`, `is required (an integer ${min}–${max})`);
        return min;
      }
      return dflt;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.fail(`${path}.${key}`, `${describe(v)} must be an integer from ${min} to ${max}`);
      return dflt ?? min;
    }
    return v;
  }

  bool(o: Obj | undefined, key: string, path: string, dflt: boolean): boolean {
    const v = o?.[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== "boolean") {
      this.fail(`${path}.${key}`, `must be true or false, got ${describe(v)}`);
      return dflt;
    }
    return v;
  }

  oneOf<T extends string>(o: Obj | undefined, key: string, path: string, allowed: readonly T[], dflt?: T): T {
    const v = this.str(o, key, path, dflt);
    if (!(allowed as readonly string[]).includes(v)) {
      if (v !== "" || dflt !== undefined) this.fail(`${path}.${key}`, `${JSON.stringify(v)} is not one of ${allowed.join(" | ")}`);
      return dflt ?? allowed[0];
    }
    return v as T;
  }

  strList(o: Obj | undefined, key: string, path: string, dflt: string[], check?: (s: string, p: string) => void): string[] {
    const v = o?.[key];
    if (v === undefined || v === null) return [...dflt];
    const items = this.arr(v, `${path}.${key}`);
    const out: string[] = [];
    items.forEach((item, i) => {
      const p = `${path}.${key}[${i}]`;
      if (typeof item !== "string") this.fail(p, `must be a string, got ${describe(item)}`);
      else {
        check?.(item, p);
        out.push(item);
      }
    });
    return out;
  }

  unknownKeys(o: Obj | undefined, path: string, known: readonly string[]): void {
    if (!o) return;
    for (const k of Object.keys(o)) {
      if (!known.includes(k)) {
        this.fail(path ? `${path}.${k}` : k, `unknown key; expected one of ${known.join(", ")} (check the spelling)`);
      }
    }
  }
}

/** Name-like values that also end up in file names, kubectl arguments and hostnames. */
function checkLabelName(r: Reader, v: string, path: string, what: string): void {
  if (!isRfc1123Label(v)) {
    r.fail(
      path,
      `${JSON.stringify(v)} is not a valid ${what}: use 1–63 lowercase letters, digits or '-', starting and ending with a letter or digit (RFC 1123)`,
    );
  }
}

function readSsh(r: Reader, v: unknown, path: string, defaultUser: string): SshLogin {
  const o = r.obj(v, path, false);
  r.unknownKeys(o, path, ["user", "port", "hostKey"]);
  const user = r.str(o, "user", path, defaultUser);
  if (!isUserName(user)) r.fail(`${path}.user`, `${JSON.stringify(user)} is not a valid user name (lowercase letters, digits, '_' or '-')`);
  const port = o?.port;
  if (port !== undefined && !isPort(port)) r.fail(`${path}.port`, `${describe(port)} is not a TCP port: use an integer from 1 to 65535`);
  const hostKey = r.optStr(o, "hostKey", path);
  if (hostKey !== undefined && !isOpenSshPublicKey(hostKey)) {
    r.fail(
      `${path}.hostKey`,
      'is not an OpenSSH public key line ("ssh-ed25519 AAAA..."): copy the line from /etc/ssh/ssh_host_ed25519_key.pub on the host or from `ssh-keyscan -t ed25519 <address>`',
    );
  }
  return { user, port: isPort(port) ? port : SSH_ENDPOINT_DEFAULTS.port, hostKey: hostKey?.trim() };
}

function readTaint(r: Reader, v: unknown, path: string): Taint | undefined {
  if (typeof v !== "string") {
    r.fail(path, `must be a string "key=value:Effect", got ${describe(v)}`);
    return undefined;
  }
  const m = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(v);
  if (!m) {
    r.fail(path, `${JSON.stringify(v)} is not a taint: write "key=value:Effect" or "key:Effect" with Effect NoSchedule, PreferNoSchedule or NoExecute`);
    return undefined;
  }
  const [, key, value, effect] = m;
  let ok = true;
  if (!isLabelKey(key)) {
    r.fail(path, `taint key ${JSON.stringify(key)} is not a valid Kubernetes key ([prefix/]name, name 1–63 of [A-Za-z0-9-_.])`);
    ok = false;
  }
  if (value !== undefined && !isLabelValue(value)) {
    r.fail(path, `taint value ${JSON.stringify(value)} is not a valid Kubernetes label value (up to 63 of [A-Za-z0-9-_.], alphanumeric ends)`);
    ok = false;
  }
  return ok ? { key, value, effect: effect as Taint["effect"] } : undefined;
}

function readLabels(r: Reader, v: unknown, path: string): Record<string, string> {
  const o = r.obj(v, path, false);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o ?? {})) {
    const p = `${path}.${JSON.stringify(k)}`;
    if (!isLabelKey(k)) {
      r.fail(p, `label key ${JSON.stringify(k)} is not valid: [prefix/]name, name 1–63 of [A-Za-z0-9-_.] with alphanumeric ends, prefix a DNS subdomain`);
      continue;
    }
    if (typeof val !== "string") {
      r.fail(p, `label value must be a string, got ${describe(val)} (quote numbers and booleans)`);
      continue;
    }
    if (!isLabelValue(val)) {
      r.fail(p, `label value ${JSON.stringify(val)} is not valid: up to 63 of [A-Za-z0-9-_.] with alphanumeric ends`);
      continue;
    }
    out[k] = val;
  }
  return out;
}

/** A node's `delivery` (method tpi: BMC and slot; method swupdate: selection and root devices). */
function readNodeDelivery(r: Reader, v: unknown, path: string, hardware: NodeSpec["hardware"]): Delivery {
  const o = r.obj(v, path, true);
  const method = r.oneOf(o, "method", path, ["tpi", "swupdate"] as const);
  if (method === "tpi") {
    r.unknownKeys(o, path, ["method", "bmc", "slot"]);
    const bmc = r.str(o, "bmc", path);
    const raw = o?.slot;
    const valid = typeof raw === "number" && Number.isInteger(raw) && raw >= 1 && raw <= 4;
    if (!valid) {
      r.fail(
        `${path}.slot`,
        raw === undefined ? "is required: the Turing Pi 2 slot (1–4) holding this module" : `${describe(raw)} is not a slot: a Turing Pi 2 board has slots 1–4`,
      );
    }
    // An invalid slot is reported above and kept out of the duplicate-slot check (slot 0).
    return { method, bmc, slot: (valid ? raw : 0) as 1 | 2 | 3 | 4 };
  }
  r.unknownKeys(o, path, ["method", "selection", "rootDevice", "altRootDevice"]);
  const selection = r.optStr(o, "selection", path);
  if (selection !== undefined && !/^[A-Za-z0-9_-]+,[A-Za-z0-9_-]+$/.test(selection)) {
    r.fail(`${path}.selection`, `${JSON.stringify(selection)} is not a SWUpdate selection: write "<set>,<mode>", e.g. "stable,main"`);
  }
  const dev = (key: string, dflt?: string) => {
    const d = dflt === undefined ? r.optStr(o, key, path) : r.str(o, key, path, dflt);
    if (d !== undefined && !/^\/dev\/[A-Za-z0-9._/-]+$/.test(d))
      r.fail(`${path}.${key}`, `${JSON.stringify(d)} is not a block device path such as "/dev/mmcblk0p1"`);
    return d;
  };
  const rootDevice = dev("rootDevice", DEFAULT_ROOT_DEVICE[hardware] ?? "/dev/mmcblk0p1") as string;
  const altRootDevice = dev("altRootDevice");
  if (altRootDevice !== undefined && altRootDevice === rootDevice)
    r.fail(`${path}.altRootDevice`, "must differ from rootDevice (the two copies of an A/B layout)");
  return { method, selection, rootDevice, altRootDevice };
}

const NODE_KEYS = [
  "name",
  "hostname",
  "role",
  "arch",
  "hardware",
  "address",
  "storageAddress",
  "hwRevision",
  "ssh",
  "delivery",
  "labels",
  "taints",
  "postJoinCommand",
  "dataDisks",
] as const;

function readNode(r: Reader, v: unknown, path: string): NodeSpec | undefined {
  const o = r.obj(v, path, true);
  if (!o) return undefined;
  r.unknownKeys(o, path, NODE_KEYS);
  const name = r.str(o, "name", path);
  // A given value is checked even when empty: "" would otherwise reach /etc/hostname and k3s's node-name.
  if (typeof o.name === "string") checkLabelName(r, name, `${path}.name`, "node name");
  const hostname = r.str(o, "hostname", path, name);
  if (typeof o.hostname === "string") checkLabelName(r, hostname, `${path}.hostname`, "hostname");
  const role = r.oneOf(o, "role", path, ROLES);
  const hardware = r.oneOf(o, "hardware", path, HARDWARE);
  const arch = r.oneOf(o, "arch", path, ARCHES, HARDWARE_ARCH[hardware]);
  if (
    o.arch !== undefined &&
    (ARCHES as readonly string[]).includes(arch) &&
    HARDWARE_ARCH[hardware] !== arch &&
    (HARDWARE as readonly string[]).includes(String(o.hardware))
  ) {
    r.fail(`${path}.arch`, `${JSON.stringify(arch)} does not match hardware ${hardware}, which is ${HARDWARE_ARCH[hardware]}: fix arch or hardware`);
  }
  const address = r.str(o, "address", path);
  if (address && !isIPv4(address)) r.fail(`${path}.address`, `${JSON.stringify(address)} is not an IPv4 address (four numbers 0–255 joined by dots)`);
  const storageAddress = r.optStr(o, "storageAddress", path);
  if (storageAddress !== undefined && !isIPv4(storageAddress)) {
    r.fail(`${path}.storageAddress`, `${JSON.stringify(storageAddress)} is not an IPv4 address`);
  }
  const hwRevision = r.str(o, "hwRevision", path, "1.0");
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(hwRevision)) {
    r.fail(`${path}.hwRevision`, `${JSON.stringify(hwRevision)} is not a board revision: use letters, digits, '.', '_' or '-' (e.g. "1.0")`);
  }
  const ssh = readSsh(r, o.ssh, `${path}.ssh`, SSH_ENDPOINT_DEFAULTS.user);
  const delivery = readNodeDelivery(r, o.delivery, `${path}.delivery`, hardware);
  if (delivery.method === "swupdate" && ssh.hostKey === undefined) {
    // A tpi node's key is learned from the image it was flashed with; a running SWUpdate node's must be pinned.
    r.fail(
      `${path}.ssh.hostKey`,
      "is required for a node updated with SWUpdate: pin its SSH host public key (from the board's console or its image, checked out of band; `ssh-keyscan` only over a trusted network)",
    );
  }
  const labels = readLabels(r, o.labels, `${path}.labels`);
  const taints: Taint[] = [];
  r.arr(o.taints, `${path}.taints`).forEach((t, i) => {
    const taint = readTaint(r, t, `${path}.taints[${i}]`);
    if (taint) taints.push(taint);
  });
  const postJoinCommand = r.optStr(o, "postJoinCommand", path);
  if (postJoinCommand !== undefined && (postJoinCommand.trim() === "" || postJoinCommand.includes("\0"))) {
    r.fail(`${path}.postJoinCommand`, "must be a non-empty shell command without NUL characters (or leave it out)");
  }
  const dataDisks = readDataDisks(r, o.dataDisks, `${path}.dataDisks`, rootDevices(hardware, delivery));
  return { name, hostname, role, arch, hardware, address, storageAddress, hwRevision, ssh, delivery, labels, taints, postJoinCommand, dataDisks };
}

function readBmc(r: Reader, v: unknown, path: string): BmcSpec | undefined {
  const o = r.obj(v, path, true);
  if (!o) return undefined;
  r.unknownKeys(o, path, ["name", "address", "ssh", "imageDir"]);
  const name = r.str(o, "name", path);
  if (typeof o.name === "string") checkLabelName(r, name, `${path}.name`, "BMC name");
  const address = r.str(o, "address", path);
  if (address && !isIPv4(address)) r.fail(`${path}.address`, `${JSON.stringify(address)} is not an IPv4 address (four numbers 0–255 joined by dots)`);
  const ssh = readSsh(r, o.ssh, `${path}.ssh`, SSH_ENDPOINT_DEFAULTS.user);
  const imageDir = r.str(o, "imageDir", path, DELIVERY_DEFAULTS.bmcImageDir);
  if (!/^\/[A-Za-z0-9._/-]*$/.test(imageDir) || imageDir.split("/").includes("..")) {
    r.fail(`${path}.imageDir`, `${JSON.stringify(imageDir)} must be an absolute path of [A-Za-z0-9._/-] without '..'`);
  }
  return { name, address, ssh, imageDir };
}

function readPin(r: Reader, v: unknown, path: string, required: boolean): ArtifactPin | undefined {
  const o = r.obj(v, path, required);
  if (!o) return undefined;
  r.unknownKeys(o, path, ["sha256", "path", "url"]);
  const raw = r.str(o, "sha256", path);
  const sha256 = normalizeSha256(raw);
  if (raw && !sha256) {
    r.fail(
      `${path}.sha256`,
      `${JSON.stringify(raw)} is not a sha256: give 64 hex digits (sha256sum) or SRI "sha256-<base64>" (nix hash to-sri); run \`npm run pin\` to compute it`,
    );
  }
  const p = r.optStr(o, "path", path);
  const url = r.optStr(o, "url", path);
  if (p === undefined && url === undefined) r.fail(path, "needs a source: set `path` (a file in the ISAR deploy directory) or `url` (http/https)");
  if (p !== undefined && url !== undefined) r.fail(path, "has both `path` and `url`: keep one");
  if (p !== undefined && (p === "" || /[\0\n]/.test(p))) r.fail(`${path}.path`, "must be a non-empty file path on one line");
  if (url !== undefined && !/^https?:\/\/[^\s]+$/.test(url)) r.fail(`${path}.url`, `${JSON.stringify(url)} is not an http(s) URL`);
  return { sha256: sha256 ?? "", path: p, url };
}

function readMachineArtifacts(r: Reader, v: unknown, path: string): MachineArtifacts | undefined {
  const o = r.obj(v, path, true);
  if (!o) return undefined;
  r.unknownKeys(o, path, ["machine", "version", "image", "distro", ...ARTIFACT_KINDS.filter((k) => k !== "dtb"), "dtbs"]);
  const machine = r.str(o, "machine", path);
  if (machine && !/^[a-z0-9][a-z0-9._-]*$/.test(machine)) r.fail(`${path}.machine`, `${JSON.stringify(machine)} is not an ISAR MACHINE name ([a-z0-9._-])`);
  const version = r.str(o, "version", path);
  if (version && !isVersionString(version)) r.fail(`${path}.version`, `${JSON.stringify(version)} is not a version label: use [A-Za-z0-9._+-]`);
  const image = r.str(o, "image", path, "isar-image-base");
  const distro = r.str(o, "distro", path, "debian-trixie");
  for (const [k, val] of [
    ["image", image],
    ["distro", distro],
  ] as const) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(val)) r.fail(`${path}.${k}`, `${JSON.stringify(val)} must be [a-z0-9._-]`);
  }
  const dtbs: ArtifactPin[] = [];
  r.arr(o.dtbs, `${path}.dtbs`).forEach((d, i) => {
    const pin = readPin(r, d, `${path}.dtbs[${i}]`, true);
    if (pin) dtbs.push(pin);
  });
  return {
    machine,
    version,
    image,
    distro,
    rootfs: readPin(r, o.rootfs, `${path}.rootfs`, true) ?? { sha256: "" },
    kernel: readPin(r, o.kernel, `${path}.kernel`, true) ?? { sha256: "" },
    initramfs: readPin(r, o.initramfs, `${path}.initramfs`, false),
    firmware: readPin(r, o.firmware, `${path}.firmware`, false),
    wic: readPin(r, o.wic, `${path}.wic`, false),
    dtbs,
  };
}

function duplicates<T>(r: Reader, items: T[], key: (t: T) => string | undefined, path: (i: number) => string, what: string): void {
  const seen = new Map<string, number>();
  items.forEach((item, i) => {
    const k = key(item);
    if (!k) return;
    const first = seen.get(k);
    if (first !== undefined) r.fail(path(i), `duplicate ${what} ${JSON.stringify(k)} (also used by ${path(first)}): each must be unique`);
    else seen.set(k, i);
  });
}

/** Config path of the i-th node. */
const nodePath = (i: number) => `nodes[${i}]`;

/** The fleet's nodes, each read on its own, then checked against each other (unique name, hostname, address). */
function readNodes(r: Reader, raw: RawFleetConfig): { rawNodes: unknown[]; nodeSlots: (NodeSpec | undefined)[]; nodes: NodeSpec[] } {
  const rawNodes = r.arr(raw.nodes, "nodes");
  if (raw.nodes === undefined) r.fail("nodes", "is required: list the fleet's nodes");
  const nodeSlots: (NodeSpec | undefined)[] = rawNodes.map((n, i) => readNode(r, n, `nodes[${i}]`));
  const nodes = nodeSlots.filter((n): n is NodeSpec => n !== undefined);
  duplicates(
    r,
    nodeSlots,
    (n) => n?.name,
    (i) => `${nodePath(i)}.name`,
    "node name",
  );
  duplicates(
    r,
    nodeSlots,
    (n) => n?.hostname,
    (i) => `${nodePath(i)}.hostname`,
    "hostname",
  );
  duplicates(
    r,
    nodeSlots,
    (n) => n?.address,
    (i) => `${nodePath(i)}.address`,
    "address",
  );
  return { rawNodes, nodeSlots, nodes };
}

/** The BMCs (unique name and address; no node shares a BMC's SSH endpoint). */
function readBmcs(r: Reader, raw: RawFleetConfig, nodeSlots: (NodeSpec | undefined)[]): BmcSpec[] {
  const bmcSlots = r.arr(raw.bmcs, "bmcs").map((b, i) => readBmc(r, b, `bmcs[${i}]`));
  const bmcs = bmcSlots.filter((b): b is BmcSpec => b !== undefined);
  duplicates(
    r,
    bmcSlots,
    (b) => b?.name,
    (i) => `bmcs[${i}].name`,
    "BMC name",
  );
  duplicates(
    r,
    bmcSlots,
    (b) => b?.address,
    (i) => `bmcs[${i}].address`,
    "BMC address",
  );
  nodeSlots.forEach((n, i) => {
    if (!n) return;
    const clash = bmcs.findIndex((b) => b.address === n.address && b.ssh.port === n.ssh.port);
    if (clash >= 0)
      r.fail(`${nodePath(i)}.address`, `${n.address}:${n.ssh.port} is also bmcs[${clash}]'s address: a node and a BMC cannot share an SSH endpoint`);
  });
  return bmcs;
}

/** Every tpi node names a known BMC, and no two nodes share a BMC slot. */
function checkTpiReferences(r: Reader, nodeSlots: (NodeSpec | undefined)[], bmcs: BmcSpec[]): void {
  nodeSlots.forEach((n, i) => {
    if (n?.delivery.method !== "tpi" || !n.delivery.bmc) return;
    const bmcName = n.delivery.bmc;
    if (!bmcs.some((b) => b.name === bmcName)) {
      r.fail(
        `${nodePath(i)}.delivery.bmc`,
        `no BMC named ${JSON.stringify(bmcName)}: add it to bmcs or fix the name (known: ${bmcs.map((b) => b.name).join(", ") || "none"})`,
      );
    }
  });
  duplicates(
    r,
    nodeSlots,
    (n) => (n?.delivery.method === "tpi" && n.delivery.slot !== (0 as number) ? `${n.delivery.bmc} slot ${n.delivery.slot}` : undefined),
    (i) => `${nodePath(i)}.delivery.slot`,
    "BMC slot",
  );
}

/** At least one server, and an odd number of them (etcd quorum). */
function checkServerCount(r: Reader, rawNodes: unknown[], nodes: NodeSpec[]): void {
  const servers = nodes.filter((n) => n.role === "server");
  if (rawNodes.length > 0 && servers.length === 0)
    r.fail("nodes", 'has no node with role "server": k3s needs at least one server (the first one gets cluster-init)');
  if (servers.length > 1 && servers.length % 2 === 0) {
    r.fail(
      "nodes",
      `has ${servers.length} servers: etcd needs an odd number for quorum (${servers.length} servers tolerate ${Math.floor((servers.length - 1) / 2)} failure(s), the same as ${servers.length - 1}); make one an agent or add a server`,
    );
  }
}

/** Artifact pins per hardware; every node's hardware has them (and a .wic for tpi nodes). */
function readArtifacts(r: Reader, raw: RawFleetConfig, nodeSlots: (NodeSpec | undefined)[], nodes: NodeSpec[]): Fleet["artifacts"] {
  const artObj = r.obj(raw.artifacts, "artifacts", nodes.length > 0) ?? {};
  const artifacts: Partial<Record<Hardware, MachineArtifacts>> = {};
  for (const [hw, v] of Object.entries(artObj)) {
    if (!(HARDWARE as readonly string[]).includes(hw)) {
      r.fail(`artifacts.${hw}`, `unknown hardware; expected one of ${HARDWARE.join(", ")}`);
      continue;
    }
    const m = readMachineArtifacts(r, v, `artifacts.${hw}`);
    if (m) artifacts[hw as Hardware] = m;
  }
  nodeSlots.forEach((n, i) => {
    if (!n || !(HARDWARE as readonly string[]).includes(n.hardware)) return;
    if (!(n.hardware in artObj)) {
      r.fail(
        `${nodePath(i)}.hardware`,
        `no artifact pins for ${n.hardware}: add artifacts.${n.hardware} (rootfs, kernel, ... with sha256) or change the node's hardware`,
      );
    } else if (n.delivery.method === "tpi" && artifacts[n.hardware] && !artifacts[n.hardware]!.wic) {
      r.fail(`${nodePath(i)}.delivery`, `tpi flashing needs a disk image: add artifacts.${n.hardware}.wic (the ISAR .wic) or deliver this node with swupdate`);
    }
  });
  return artifacts;
}

/** ISAR build settings (optional section). */
function readIsarSettings(r: Reader, raw: RawFleetConfig): Fleet["isar"] {
  const isarCfg = r.obj(raw.isar, "isar", false);
  if (!isarCfg) return undefined;
  r.unknownKeys(isarCfg, "isar", ["kasDir", "workDir", "buildDir", "dlDir", "sstateDir", "engine", "allowRoot", "timeoutSeconds"]);
  return {
    kasDir: r.str(isarCfg, "kasDir", "isar"),
    workDir: r.optStr(isarCfg, "workDir", "isar"),
    buildDir: r.optStr(isarCfg, "buildDir", "isar"),
    dlDir: r.optStr(isarCfg, "dlDir", "isar"),
    sstateDir: r.optStr(isarCfg, "sstateDir", "isar"),
    engine: r.oneOf(isarCfg, "engine", "isar", ["podman", "docker"] as const, "podman"),
    allowRoot: r.bool(isarCfg, "allowRoot", "isar", false),
    timeoutSeconds: r.num(isarCfg, "timeoutSeconds", "isar", 6 * 3600, 60, 7 * 24 * 3600),
  };
}

/** k3s settings (optional section, every key defaulted). */
function readK3sSettings(r: Reader, raw: RawFleetConfig): Fleet["k3s"] {
  const k3sCfg = r.obj(raw.k3s, "k3s", false);
  r.unknownKeys(k3sCfg, "k3s", [
    "version",
    "clusterCidr",
    "serviceCidr",
    "clusterDns",
    "disable",
    "kubeletArgs",
    "tlsSan",
    "secretsEncryption",
    "protectKernelDefaults",
    "joinTimeoutSeconds",
    "drainTimeoutSeconds",
    "tokenSource",
    "flannelBackend",
  ]);
  // Removed key: say what replaced it rather than "unknown key".
  if (k3sCfg && "tokenSource" in k3sCfg) {
    r.fail(
      "k3s.tokenSource",
      "was removed: the cluster token is always @pulumi/random's RandomPassword; to keep an existing cluster's token, set it with `pulumi config set --secret isar-k3s:clusterToken <token>` and delete k3s.tokenSource",
    );
  }
  const cidr = (key: string, dflt: string) => {
    const v = r.str(k3sCfg, key, "k3s", dflt);
    if (!isIPv4Cidr(v)) r.fail(`k3s.${key}`, `${JSON.stringify(v)} is not an IPv4 CIDR such as "10.42.0.0/16"`);
    return v;
  };
  const k3s = {
    version: r.str(k3sCfg, "version", "k3s", "v1.31.4+k3s1"),
    clusterCidr: cidr("clusterCidr", "10.42.0.0/16"),
    serviceCidr: cidr("serviceCidr", "10.43.0.0/16"),
    clusterDns: r.str(k3sCfg, "clusterDns", "k3s", "10.43.0.10"),
    disable: r.strList(k3sCfg, "disable", "k3s", ["traefik", "servicelb", "local-storage"], (s, p) => {
      if (!/^[a-z0-9-]+$/.test(s)) r.fail(p, `${JSON.stringify(s)} is not a k3s component name`);
    }),
    kubeletArgs: r.strList(
      k3sCfg,
      "kubeletArgs",
      "k3s",
      [
        "max-pods=50",
        "system-reserved=cpu=100m,memory=256Mi",
        "kube-reserved=cpu=100m,memory=256Mi",
        "eviction-hard=memory.available<100Mi,nodefs.available<10%",
      ],
      (s, p) => {
        if (!/^[a-z0-9-]+=[^\s]+$/.test(s)) r.fail(p, `${JSON.stringify(s)} is not a kubelet argument "name=value" (no leading dashes, no spaces)`);
      },
    ),
    tlsSan: r.strList(k3sCfg, "tlsSan", "k3s", [], (s, p) => {
      if (!isIPv4(s) && !isRfc1123Subdomain(s)) r.fail(p, `${JSON.stringify(s)} is neither an IPv4 address nor a DNS name`);
    }),
    secretsEncryption: r.bool(k3sCfg, "secretsEncryption", "k3s", true),
    protectKernelDefaults: r.bool(k3sCfg, "protectKernelDefaults", "k3s", true),
    joinTimeoutSeconds: r.num(k3sCfg, "joinTimeoutSeconds", "k3s", 600, 10, 86400),
    drainTimeoutSeconds: r.num(k3sCfg, "drainTimeoutSeconds", "k3s", 300, 10, 86400),
    flannelBackend: r.oneOf(k3sCfg, "flannelBackend", "k3s", FLANNEL_BACKENDS, "vxlan"),
  };
  if (!/^v[0-9]+\.[0-9]+\.[0-9]+\+k3s[0-9]+$/.test(k3s.version))
    r.fail("k3s.version", `${JSON.stringify(k3s.version)} is not a k3s version such as "v1.31.4+k3s1"`);
  if (!isIPv4(k3s.clusterDns)) r.fail("k3s.clusterDns", `${JSON.stringify(k3s.clusterDns)} is not an IPv4 address`);
  return k3s;
}

/** SWUpdate bundle settings; a certificate is required once a node is updated with CMS-signed bundles. */
function readSwupdateSettings(r: Reader, raw: RawFleetConfig, nodes: NodeSpec[]): Fleet["swupdate"] {
  const swupdateCfg = r.obj(raw.swupdate, "swupdate", false);
  r.unknownKeys(swupdateCfg, "swupdate", ["version", "certificate", "signing", "encrypt", "compression"]);
  const swupdate = {
    version: r.str(swupdateCfg, "version", "swupdate", "1.0.0"),
    certificate: r.optStr(swupdateCfg, "certificate", "swupdate"),
    signing: r.oneOf(swupdateCfg, "signing", "swupdate", SIGNING_METHODS, "cms"),
    encrypt: r.bool(swupdateCfg, "encrypt", "swupdate", false),
    compression: swupdateCfg?.compression === undefined ? undefined : r.oneOf(swupdateCfg, "compression", "swupdate", ["zlib", "zstd"] as const),
  };
  if (!isVersionString(swupdate.version)) r.fail("swupdate.version", `${JSON.stringify(swupdate.version)} is not a version label: use [A-Za-z0-9._+-]`);
  if (swupdate.certificate !== undefined && !/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(swupdate.certificate)) {
    r.fail("swupdate.certificate", "is not a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)");
  }
  const swNodes = nodes.filter((n) => n.delivery.method === "swupdate");
  if (swNodes.length > 0 && swupdate.certificate === undefined && swupdate.signing === "cms") {
    r.fail(
      "swupdate.certificate",
      `is required: nodes ${swNodes.map((n) => n.name).join(", ")} are updated with SWUpdate, which checks the CMS signature against this certificate`,
    );
  }
  return swupdate;
}

/** Network profile settings; VLAN profiles need every node's storage address. */
function readNetworkSettings(r: Reader, raw: RawFleetConfig, nodeSlots: (NodeSpec | undefined)[]): Fleet["network"] {
  const networkCfg = r.obj(raw.network, "network", false);
  r.unknownKeys(networkCfg, "network", ["profile", "interface", "bondInterfaces", "k3sVlan", "storageVlan", "prefixLength", "gateway", "dns"]);
  const network = {
    profile: r.oneOf(networkCfg, "profile", "network", NETWORK_PROFILES, "simple"),
    interface: r.str(networkCfg, "interface", "network", "eth1"),
    bondInterfaces: r.strList(networkCfg, "bondInterfaces", "network", ["eth1", "eth2"], (s, p) => {
      if (!isInterfaceName(s)) r.fail(p, `${JSON.stringify(s)} is not an interface name (1–15 of [A-Za-z0-9_.-])`);
    }),
    k3sVlan: r.num(networkCfg, "k3sVlan", "network", 200, 1, 4094),
    storageVlan: r.num(networkCfg, "storageVlan", "network", 100, 1, 4094),
    prefixLength: r.num(networkCfg, "prefixLength", "network", 24, 1, 32),
    gateway: r.optStr(networkCfg, "gateway", "network"),
    dns: r.strList(networkCfg, "dns", "network", [], (s, p) => {
      if (!isIPv4(s)) r.fail(p, `${JSON.stringify(s)} is not an IPv4 address`);
    }),
  };
  if (!isInterfaceName(network.interface))
    r.fail("network.interface", `${JSON.stringify(network.interface)} is not an interface name (1–15 of [A-Za-z0-9_.-])`);
  if (network.gateway !== undefined && !isIPv4(network.gateway)) r.fail("network.gateway", `${JSON.stringify(network.gateway)} is not an IPv4 address`);
  if (network.profile !== "simple" && network.k3sVlan === network.storageVlan) {
    r.fail("network.storageVlan", `equals k3sVlan (${network.k3sVlan}): the ${network.profile} profile needs two different VLAN ids`);
  }
  if (network.profile === "bonding-vlans" && network.bondInterfaces.length < 2) {
    r.fail("network.bondInterfaces", "bonding-vlans needs at least two member interfaces");
  }
  if (network.profile !== "simple") {
    nodeSlots.forEach((n, i) => {
      if (n && n.storageAddress === undefined)
        r.fail(`${nodePath(i)}.storageAddress`, `is required with network profile ${network.profile} (the node's address on VLAN ${network.storageVlan})`);
    });
  }
  return network;
}

/** Delivery settings (defaults: lib/model/defaults.ts). */
function readDeliverySettings(r: Reader, raw: RawFleetConfig): Fleet["delivery"] {
  const deliveryCfg = r.obj(raw.delivery, "delivery", false);
  r.unknownKeys(deliveryCfg, "delivery", ["flashTimeoutSeconds", "bootTimeoutSeconds", "maxAgentsInFlight"]);
  return {
    flashTimeoutSeconds: r.num(deliveryCfg, "flashTimeoutSeconds", "delivery", DELIVERY_DEFAULTS.flashTimeoutSeconds, 1, 86400),
    bootTimeoutSeconds: r.num(deliveryCfg, "bootTimeoutSeconds", "delivery", DELIVERY_DEFAULTS.bootTimeoutSeconds, 1, 86400),
    maxAgentsInFlight: r.num(deliveryCfg, "maxAgentsInFlight", "delivery", DELIVERY_DEFAULTS.maxAgentsInFlight, 1, 64),
  };
}

/** Image composition settings. */
function readImageSettings(r: Reader, raw: RawFleetConfig): Fleet["images"] {
  const imagesCfg = r.obj(raw.images, "images", false);
  r.unknownKeys(imagesCfg, "images", ["pkgsSource", "nixpkgs", "headroomPercent", "timeoutSeconds", "offline"]);
  return {
    pkgsSource: r.oneOf(imagesCfg, "pkgsSource", "images", ["nixpkgs", "host"] as const, "nixpkgs"),
    nixpkgs: r.optStr(imagesCfg, "nixpkgs", "images"),
    headroomPercent: r.num(imagesCfg, "headroomPercent", "images", 30, 0, 1000),
    timeoutSeconds: r.num(imagesCfg, "timeoutSeconds", "images", 1800, 10, 86400),
    offline: r.bool(imagesCfg, "offline", "images", true),
  };
}

/** Public keys baked into every image; required once there are nodes. */
function readAuthorizedKeys(r: Reader, raw: RawFleetConfig, nodes: NodeSpec[]): string[] {
  const authorizedKeys: string[] = [];
  r.arr(raw.authorizedKeys, "authorizedKeys").forEach((k, i) => {
    if (typeof k !== "string" || !isOpenSshPublicKey(k)) {
      r.fail(`authorizedKeys[${i}]`, "is not an OpenSSH public key line (the contents of a .pub file)");
    } else authorizedKeys.push(k.trim());
  });
  if (nodes.length > 0 && authorizedKeys.length === 0 && raw.authorizedKeys === undefined) {
    r.fail("authorizedKeys", "is required: list the public key(s) that may log in to the nodes (the deploy key's .pub at least)");
  }
  return authorizedKeys;
}

/** Workloads applied after the cluster is up: namespaces, manifests, Helm charts. */
function readWorkloads(r: Reader, raw: RawFleetConfig): Fleet["workloads"] {
  const workloadsCfg = r.obj(raw.workloads, "workloads", false);
  r.unknownKeys(workloadsCfg, "workloads", ["namespaces", "manifests", "helmCharts"]);
  const helmCharts: HelmChart[] = [];
  r.arr(workloadsCfg?.helmCharts, "workloads.helmCharts").forEach((h, i) => {
    const p = `workloads.helmCharts[${i}]`;
    const chartCfg = r.obj(h, p, true);
    if (!chartCfg) return;
    r.unknownKeys(chartCfg, p, ["name", "chart", "repo", "version", "namespace", "values"]);
    const name = r.str(chartCfg, "name", p);
    if (typeof chartCfg.name === "string") checkLabelName(r, name, `${p}.name`, "release name");
    const namespace = r.str(chartCfg, "namespace", p, "default");
    checkLabelName(r, namespace, `${p}.namespace`, "namespace");
    helmCharts.push({
      name,
      chart: r.str(chartCfg, "chart", p),
      repo: r.optStr(chartCfg, "repo", p),
      version: r.optStr(chartCfg, "version", p),
      namespace,
      values: (r.obj(chartCfg.values, `${p}.values`, false) ?? {}) as Record<string, unknown>,
    });
  });
  return {
    namespaces: r.strList(workloadsCfg, "namespaces", "workloads", [], (s, p) => checkLabelName(r, s, p, "namespace")),
    manifests: r.strList(workloadsCfg, "manifests", "workloads", []),
    helmCharts,
  };
}

/** Read the whole config, section by section, in the order the problems are reported. */
export function parseFleet(raw: RawFleetConfig): Fleet {
  const r = new Reader();
  const clusterName = typeof raw.clusterName === "string" ? raw.clusterName : raw.clusterName === undefined ? "isar-k3s" : "";
  if (!isRfc1123Label(clusterName)) r.fail("clusterName", `${describe(raw.clusterName)} is not a valid cluster name (RFC 1123 label)`);
  const { rawNodes, nodeSlots, nodes } = readNodes(r, raw);
  const bmcs = readBmcs(r, raw, nodeSlots);
  checkTpiReferences(r, nodeSlots, bmcs);
  checkServerCount(r, rawNodes, nodes);
  const artifacts = readArtifacts(r, raw, nodeSlots, nodes);
  const isar = readIsarSettings(r, raw);
  const k3s = readK3sSettings(r, raw);
  const swupdate = readSwupdateSettings(r, raw, nodes);
  const network = readNetworkSettings(r, raw, nodeSlots);
  const delivery = readDeliverySettings(r, raw);
  const images = readImageSettings(r, raw);
  const authorizedKeys = readAuthorizedKeys(r, raw, nodes);
  const deployUser = applyDeployUser(r, raw.deployUser, rawNodes, nodeSlots);
  const workloads = readWorkloads(r, raw);
  if (r.problems.length > 0) throw new FleetConfigError(r.problems);
  return { clusterName, nodes, bmcs, artifacts, isar, k3s, swupdate, network, delivery, images, authorizedKeys, deployUser, workloads };
}
