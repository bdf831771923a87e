/**
 * What a lab is made of: a LabSpec (hosts, keys, timings), built by hand in tests or derived from a
 * parsed fleet (`labSpecFromFleet`, for the dev stack), and the address allocation that lets several
 * labs run side by side.
 *
 * Guarantees: every host gets its own loopback address (127.0.0.0/8 only; anything else is refused,
 * so lab traffic never leaves this machine); hosts without an address get one from a random 127.X.Y.0/24
 * block whose endpoints were free (bind-probed) at allocation time; names are unique.
 */
import * as net from "net";
import type { Fleet } from "../lib/model/types";

export interface LabSwupdateSpec {
  /** Block devices of the node: path under /dev (e.g. "mmcblk0p1") → size in bytes (sparse files). */
  devices: Record<string, number>;
  /** Devices the node can boot a root filesystem from (default: all). After a reboot the most recently written one with an ext4 /etc is booted. */
  rootDevices?: string[];
}

export interface LabHostSpec {
  name: string;
  role: "bmc" | "node";
  /** Loopback address (127.0.0.0/8); allocated when absent. */
  address?: string;
  /** SSH port (default 22). */
  port?: number;
  /** Login user (default root). */
  user?: string;
  /** Hostname of an always-on host (default: name). Slot nodes take theirs from the flashed image. */
  hostname?: string;
  /** Private host key file to use instead of a generated one (lets a stack pin it). */
  hostKeyFile?: string;
  /** Turing Pi slot node: powered and booted by that BMC's tpi. */
  tpi?: { bmc: string; slot: number };
  /** SWUpdate node: always on, with these block devices. */
  swupdate?: LabSwupdateSpec;
  /** Written to /etc/hwrevision of always-on nodes ("<board> <revision>"). */
  hwRevision?: string;
  /** Always-on node with a non-root user: its sudo asks for a password (default: passwordless sudo). */
  sudoPassword?: boolean;
  /**
   * Disks attached to the node besides its root device (e.g. the CM4's SATA SSD): /dev name → size in
   * bytes and file system ("none": blank). Kept across flashes; mounted at boot by the image's mount units.
   */
  disks?: Record<string, { sizeBytes: number; filesystem: "ext4" | "none" }>;
}

export interface LabSpec {
  hosts: LabHostSpec[];
  /** Extra public keys authorized on the BMC and always-on nodes (besides the lab's deploy key). */
  authorizedKeys?: string[];
  /** Use this private key as the lab's deploy key instead of generating one. */
  deployKeyFile?: string;
  /** Simulated eMMC write speed of `tpi flash`, MB/s (default 100). */
  flashRateMBps?: number;
  /** Simulated boot time after power-on / reboot, ms (default 300). */
  bootDelayMs?: number;
  /** HTTPS port of the BMC daemon that tpi talks to, on the BMC's address (default 443, as the firmware). */
  bmcdPort?: number;
  /**
   * Give every node k3s (lab/k3s: k3s's supervisor and CLI over real etcd, kube-apiserver,
   * controller-manager, scheduler and kwok): its commands on the node's PATH, the Kubernetes components
   * (scripts/k8s-components.sh's cache) read-only at /opt/lab-k8s, an observation log directory shared by
   * all nodes (<lab dir>/k3s-cluster at /srv/k3s-cluster: join.log, argv.log; no cluster state), and the
   * node's enabled k3s units started at every boot, as systemd would. Default: off.
   */
  k3s?: {
    /** Seconds a joining server stays an etcd learner before it asks for promotion (default 1). */
    joinSeconds?: number;
    /** Directory with bin/ and stages/ from scripts/k8s-components.sh (default: that script's cache). */
    k8sDir?: string;
    /** More K3S_SIM_* settings for the nodes' k3s (lab/k3s/README.md), e.g. K3S_SIM_GRACE_SECONDS. */
    env?: Record<string, string>;
  };
}

export function isLoopbackV4(a: string): boolean {
  const p = a.split(".");
  return p.length === 4 && p[0] === "127" && p.every((x) => /^(0|[1-9][0-9]{0,2})$/.test(x) && Number(x) <= 255) && p[3] !== "0" && p[3] !== "255";
}

/** Lab hosts for a fleet: its BMCs, its tpi slot nodes and its SWUpdate nodes, at the fleet's addresses. */
export function labSpecFromFleet(fleet: Fleet, extra: Partial<LabSpec> & { hostKeyFiles?: Record<string, string> } = {}): LabSpec {
  const hosts: LabHostSpec[] = [];
  for (const b of fleet.bmcs) {
    hosts.push({ name: b.name, role: "bmc", address: b.address, port: b.ssh.port, user: b.ssh.user, hostKeyFile: extra.hostKeyFiles?.[b.name] });
  }
  for (const n of fleet.nodes) {
    const h: LabHostSpec = {
      name: n.name,
      role: "node",
      address: n.address,
      port: n.ssh.port,
      user: n.ssh.user,
      hostname: n.hostname,
      hostKeyFile: extra.hostKeyFiles?.[n.name],
    };
    if (n.delivery.method === "tpi") h.tpi = { bmc: n.delivery.bmc, slot: n.delivery.slot };
    else {
      // the node's root device(s) become 1 GiB sparse files in its /dev; other partitions are not simulated
      const devs = [n.delivery.rootDevice, n.delivery.altRootDevice].filter((d): d is string => d !== undefined);
      const devices: Record<string, number> = {};
      for (const d of devs) {
        if (!/^\/dev\/[A-Za-z0-9._-]+$/.test(d))
          throw new Error(`lab: node ${n.name}: root device ${d} must be a plain /dev/<name> path for the simulated lab`);
        devices[d.slice("/dev/".length)] = 1 << 30;
      }
      h.swupdate = { devices };
      h.hwRevision = `${n.hardware} ${n.hwRevision}`;
    }
    // data disks under a plain /dev/<name> become attached ext4 disks (others stay absent: "missing")
    for (const d of n.dataDisks ?? []) {
      if (!/^\/dev\/[A-Za-z0-9._-]+$/.test(d.device)) continue;
      h.disks = { ...h.disks, [d.device.slice("/dev/".length)]: { sizeBytes: 256 << 20, filesystem: d.filesystem === "ext4" ? "ext4" : "none" } };
    }
    hosts.push(h);
  }
  const { hostKeyFiles: _ignored, ...rest } = extra;
  void _ignored;
  return { ...rest, hosts, authorizedKeys: [...fleet.authorizedKeys, ...(extra.authorizedKeys ?? [])] };
}

/** Check a spec; throws one error listing every problem. */
export function validateSpec(spec: LabSpec): void {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const [i, h] of spec.hosts.entries()) {
    const p = `hosts[${i}] (${h.name})`;
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(h.name)) problems.push(`${p}: name must be [a-z0-9-], 1-63 chars`);
    if (names.has(h.name)) problems.push(`${p}: duplicate name`);
    names.add(h.name);
    if (h.address !== undefined && !isLoopbackV4(h.address))
      problems.push(`${p}: address ${h.address} is not a 127.0.0.0/8 host address: lab traffic must stay on this machine`);
    if (h.tpi) {
      const bmc = spec.hosts.find((b) => b.name === h.tpi!.bmc);
      if (!bmc || bmc.role !== "bmc") problems.push(`${p}: tpi.bmc ${h.tpi.bmc} is not a BMC host of this lab`);
      if (![1, 2, 3, 4].includes(h.tpi.slot)) problems.push(`${p}: tpi.slot must be 1-4`);
      if (spec.hosts.some((o) => o !== h && o.tpi && o.tpi.bmc === h.tpi!.bmc && o.tpi.slot === h.tpi!.slot))
        problems.push(`${p}: slot ${h.tpi.slot} of ${h.tpi.bmc} is taken twice`);
    }
    if (h.role === "bmc" && (h.tpi || h.swupdate)) problems.push(`${p}: a BMC cannot be a tpi or swupdate node`);
    if (h.swupdate)
      for (const d of Object.keys(h.swupdate.devices))
        if (!/^[A-Za-z0-9._-]+$/.test(d)) problems.push(`${p}: device name ${d} must be a plain file name under /dev`);
  }
  const eps = new Set<string>();
  for (const h of spec.hosts) {
    if (!h.address) continue;
    const ep = `${h.address}:${h.port ?? 22}`;
    if (eps.has(ep)) problems.push(`${h.name}: endpoint ${ep} is used twice`);
    eps.add(ep);
  }
  if (problems.length) throw new Error(`lab spec has ${problems.length} problem(s):\n  - ${problems.join("\n  - ")}`);
}

function probe(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host: address, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/**
 * Fill in missing addresses from a random 127.X.Y.0/24 block (X in 64–250) whose SSH and bmcd
 * endpoints are currently free; also checks the given ones. Returns a new spec.
 */
export async function allocateAddresses(spec: LabSpec): Promise<LabSpec> {
  const bmcdPort = spec.bmcdPort ?? 443;
  const endpoints = (hosts: LabHostSpec[]) =>
    hosts.flatMap((h) => [[h.address!, h.port ?? 22] as const, ...(h.role === "bmc" ? [[h.address!, bmcdPort] as const] : [])]);
  const fixed = spec.hosts.filter((h) => h.address);
  for (const [a, p] of endpoints(fixed)) {
    if (!(await probe(a, p)))
      throw new Error(
        `lab: ${a}:${p} is already in use: is another lab (or the dev lab) running with the same addresses? Stop it (\`node bin/lab/cli.js stop --dir <dir>\`) or change the addresses`,
      );
  }
  if (fixed.length === spec.hosts.length) return spec;
  for (let attempt = 0; attempt < 30; attempt++) {
    const x = 64 + Math.floor(Math.random() * 187);
    const y = Math.floor(Math.random() * 256);
    let i = 0;
    const hosts = spec.hosts.map((h) => (h.address ? h : { ...h, address: `127.${x}.${y}.${++i + 1}` }));
    const fresh = hosts.filter((h) => !fixed.includes(h));
    let ok = true;
    for (const [a, p] of endpoints(fresh)) if (!(await probe(a, p))) ok = false;
    if (ok) return { ...spec, hosts };
  }
  throw new Error("lab: could not find a free 127.X.Y.0/24 block after 30 tries");
}
