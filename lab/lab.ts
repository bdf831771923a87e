/**
 * The simulated lab: real OpenSSH hosts on this machine, one BMC with a Turing Pi `tpi`, slot nodes
 * that boot what was flashed, and SWUpdate nodes. `startLab(spec, dir)` starts one; `Lab.stop()` ends it.
 *
 * Each host = its own loopback address + its own sshd (/usr/sbin/sshd -D -e, own ed25519 host key, own
 * config, key-only auth) running as process 1's child in its own mount, UTS and PID namespaces
 * (lab/node-init.sh builds the root view: copy-on-write /etc /var /opt /srv, private /root /home /mnt
 * /boot /tmp /run /dev, per-host /usr/local/bin and /usr/local/sbin, everything else read-only).
 * Power off = SIGKILL to the host's process 1, which ends every process of the host.
 *
 * BMC: the lab serves the BMC daemon's HTTPS API (lab/bmc/bmcd.ts) on <bmc address>:<bmcdPort>; the real
 * `tpi` CLI (crates.io, built by scripts/tpi.sh) on the BMC's PATH talks to it (the BMC's sshd sets
 * TPI_HOSTNAME/TPI_PORT, tpi's own settings, to that address: every lab host shares this machine's
 * 127.0.0.1). The lab keeps per-slot eMMC files (<dir>/bmc-<name>/slot<N>.img), power state and UART
 * buffers; flashing writes the (xz-decompressed) image at `flashRateMBps` and leaves the node off. Power-on of a slot node with a freshly flashed eMMC wipes the node's state, copies its
 * identity files out of the image's ext4 root (debugfs) and starts its sshd.
 *
 * Guarantees: every wait is bounded; `stop()` kills every host process (their mounts vanish with
 * their namespaces: nothing to unmount on this machine's side), closes the servers and is idempotent;
 * if the process running the lab dies, its hosts die with it (PR_SET_PDEATHSIG on unshare, which kills
 * the namespace's process 1); `ownerPid` / `maxLifetimeMs` bound a lab's life further.
 */
import { ChildProcess, execFile, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { Bmcd, BmcFlashFault, ensureCertificate } from "./bmc/bmcd";
import { findTpi } from "./bmc/tpi-bin";
import { extractFromImage, findRootFilesystem } from "./image";
import { LabHostSpec, LabSpec, allocateAddresses, validateSpec } from "./spec";

const execP = promisify(execFile);

/** The project root (holds lab/node-init.sh), from source (lab/) or compiled (bin/lab/). */
export function projectRoot(): string {
  let d = __dirname;
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(d, "lab", "node-init.sh"))) return d;
    d = path.dirname(d);
  }
  throw new Error(`lab: cannot find lab/node-init.sh above ${__dirname}`);
}

export type LabFault =
  /** eMMC write error half-way through a flash (default text `Input/output error (os error 5)`). */
  | { kind: "flash-error"; slot?: number; message?: string }
  /** The eMMC does not keep what was written: the BMC's read-back (crc) check fails. */
  | { kind: "crc-mismatch"; slot?: number }
  /** No SD card in the BMC: /mnt/sdcard is an empty directory on the BMC's small root file system. */
  | { kind: "no-sdcard"; bmc?: string }
  | { kind: "never-boot"; node: string }
  | { kind: "bmc-unreachable"; bmc?: string };

export interface LabHostInfo {
  name: string;
  role: "bmc" | "node";
  address: string;
  port: number;
  user: string;
  /** Current host key (OpenSSH public key line); undefined for a slot node that never booted. */
  hostKey?: string;
  /** The host's private directory on this machine (upper/, fs/, dev/, bin/, sbin/, log). */
  rootDir: string;
  tpi?: { bmc: string; slot: number };
  swupdate?: boolean;
}

export interface LabStatus {
  dir: string;
  hosts: Record<string, LabHostInfo & { up: boolean; powered: boolean; initPid?: number }>;
  faults: LabFault[];
}

export interface StartOptions {
  /** Stop the lab when this process is gone (checked every second). */
  ownerPid?: number;
  /** Stop the lab after this long, ms. */
  maxLifetimeMs?: number;
  /** Forget keys and disk state left in `dir` by an earlier run. */
  fresh?: boolean;
}

interface HostRuntime {
  spec: LabHostSpec;
  info: LabHostInfo;
  dir: string;
  proc?: ChildProcess;
  initPid?: number;
  up: boolean;
  /** Powered (slot nodes: per the BMC; others: running unless stopped). */
  powered: boolean;
  /** eMMC generation last booted (slot nodes). */
  bootedGeneration?: number;
  /** Set when stopping on purpose, so the exit handler does not restart. */
  intentionalStop?: boolean;
  startSeq: number;
  uart: string;
}

interface BmcState {
  name: string;
  bmcd?: Bmcd;
  generation: Record<number, number>;
}

/** Free space of the BMC's own root file system that /mnt/sdcard falls back to without an SD card. */
const NO_SDCARD_ROOTFS_BYTES = 8 << 20;
/** The port the firmware's bmcd serves HTTPS on, and tpi's default. */
const BMCD_DEFAULT_PORT = 443;

const SLOTS = [1, 2, 3, 4];
const BOOT_FILES = [
  "/etc/hostname",
  "/etc/hwrevision",
  "/etc/os-release",
  "/etc/hosts",
  "/etc/ssh/ssh_host_ed25519_key",
  "/etc/ssh/ssh_host_ed25519_key.pub",
  "/etc/ssh/ssh_host_ecdsa_key",
  "/etc/ssh/ssh_host_ecdsa_key.pub",
  "/etc/ssh/ssh_host_rsa_key",
  "/etc/ssh/ssh_host_rsa_key.pub",
  "/root/.ssh/authorized_keys",
];
/** Where each node of a k3s-enabled lab sees the shared observation logs (join.log, argv.log). */
const K3S_CLUSTER_MOUNT = "/srv/k3s-cluster";
/** Where each node of a k3s-enabled lab sees the Kubernetes components (read-only). */
const K8S_MOUNT = "/opt/lab-k8s";
const KUBE_VERSION = "1.34.4";

/**
 * The Kubernetes components for a k3s lab: spec.k3s.k8sDir, else $ISAR_K3S_K8S_DIR, else what
 * scripts/k8s-components.sh printed last (.k8s-components-dir), else its cache directory.
 */
export function k8sComponentsDir(root: string, given?: string): string {
  const recorded = path.join(root, ".k8s-components-dir");
  const dir =
    given ??
    process.env.ISAR_K3S_K8S_DIR ??
    (fs.existsSync(recorded)
      ? fs.readFileSync(recorded, "utf8").trim()
      : path.join(process.env.ISAR_K3S_CACHE ?? path.join(os.homedir(), ".cache", "isar-k3s"), "k8s", `v${KUBE_VERSION}`));
  for (const f of ["bin/kube-apiserver", "bin/kubectl", "bin/kwok", "bin/etcd", "stages/node-heartbeat-with-lease.yaml"]) {
    if (!fs.existsSync(path.join(dir, f)))
      throw new Error(
        `lab: k3s needs the Kubernetes components, but ${path.join(dir, f)} is missing. How to fix: run \`bash scripts/setup.sh\` (or \`bash scripts/k8s-components.sh\`), or set spec.k3s.k8sDir / ISAR_K3S_K8S_DIR to their directory.`,
      );
  }
  return dir;
}
// The image's seed-003 baseline as the host's boot applies it: sshd drop-ins (root logins refused, the
// deploy user's keys under /etc/ssh/isar-k3s), sudoers for the deploy user, and the systemd units
// (node-init.sh mounts the data disks of the image's mount units).
const BOOT_DIRS = ["/etc/rancher", "/etc/isar-k3s", "/etc/swupdate", "/etc/ssh/sshd_config.d", "/etc/ssh/isar-k3s", "/etc/sudoers.d", "/etc/systemd/system"];

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A bound for races: does not keep the process alive. */
function limit(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait until `address:port` answers with an SSH banner. */
async function waitForSsh(address: string, port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`sshd on ${address}:${port} exited during start`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: address, port });
      const t = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 1000);
      s.once("data", (d) => {
        clearTimeout(t);
        last = d.toString();
        s.destroy();
        resolve(d.toString().startsWith("SSH-"));
      });
      s.once("error", (e) => {
        clearTimeout(t);
        last = e.message;
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`sshd on ${address}:${port} did not answer within ${timeoutMs} ms (${last})`);
}

async function sshKeygen(file: string, comment: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await fs.promises.rm(file, { force: true });
  await fs.promises.rm(file + ".pub", { force: true });
  await execP("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
}

async function publicKeyOf(privFile: string): Promise<string> {
  const { stdout } = await execP("ssh-keygen", ["-y", "-f", privFile]);
  return stdout.trim().split(/\s+/).slice(0, 2).join(" ");
}

export class Lab {
  readonly hosts: Record<string, LabHostInfo> = {};
  /** The lab's deploy key: private key text (authorized on BMCs and always-on nodes) and its files. */
  deployKey = { privateKey: "", publicKey: "", path: "" };
  private rt = new Map<string, HostRuntime>();
  private bmcs = new Map<string, BmcState>();
  private faults: LabFault[] = [];
  private stopped = false;
  private stateSeq = 0;
  private timers: NodeJS.Timeout[] = [];
  private ctlServer?: net.Server;
  private readonly root = projectRoot();

  constructor(
    readonly spec: LabSpec,
    readonly dir: string,
  ) {}

  /** The first BMC, or undefined. */
  get bmc(): (LabHostInfo & { bmcdUrl: string }) | undefined {
    const b = [...this.rt.values()].find((r) => r.spec.role === "bmc");
    return b ? { ...b.info, bmcdUrl: `https://${b.info.address}:${this.bmcdPort}` } : undefined;
  }

  private get bmcdPort(): number {
    return this.spec.bmcdPort ?? BMCD_DEFAULT_PORT;
  }

  private log(msg: string): void {
    fs.appendFileSync(path.join(this.dir, "lab.log"), `${new Date().toISOString()} ${msg}\n`);
  }

  // ---------------------------------------------------------------- start

  async start(opts: StartOptions): Promise<void> {
    validateSpec(this.spec);
    const dir = this.dir;
    if (opts.fresh) await fs.promises.rm(dir, { recursive: true, force: true });
    await fs.promises.mkdir(dir, { recursive: true });
    // Hosts overlay these (copy-on-write or read-only): a lab dir below them would be written under its
    // own overlay. Private directories (/root, /home, /tmp, ...) are fine: node-init.sh holds the host
    // dir open.
    const overlaid = ["/etc", "/var", "/opt", "/srv", "/usr"];
    const abs = path.resolve(dir);
    for (const o of overlaid)
      if (abs === o || abs.startsWith(o + "/"))
        throw new Error(`lab dir ${abs} is under ${o}, which the lab hosts overlay: use a directory in the project (e.g. .lab/dev), your home or /tmp`);
    this.log(`starting lab in ${abs}`);

    // deploy key
    const deployFile = this.spec.deployKeyFile ? path.resolve(this.spec.deployKeyFile) : path.join(dir, "keys", "deploy_ed25519");
    if (!fs.existsSync(deployFile)) await sshKeygen(deployFile, "isar-k3s-lab-deploy");
    this.deployKey = { privateKey: await fs.promises.readFile(deployFile, "utf8"), publicKey: await publicKeyOf(deployFile), path: deployFile };

    for (const h of this.spec.hosts) {
      const hdir = path.join(dir, "hosts", h.name);
      const r: HostRuntime = {
        spec: h,
        dir: hdir,
        up: false,
        powered: false,
        startSeq: 0,
        uart: "",
        info: {
          name: h.name,
          role: h.role,
          address: h.address!,
          port: h.port ?? 22,
          user: h.user ?? "root",
          rootDir: hdir,
          tpi: h.tpi,
          swupdate: h.swupdate ? true : undefined,
        },
      };
      this.rt.set(h.name, r);
      this.hosts[h.name] = r.info;
      for (const d of ["upper", "work", "fs", "dev", "bin", "sbin"]) await fs.promises.mkdir(path.join(hdir, d), { recursive: true });
      const genFile = path.join(hdir, "booted-generation");
      if (fs.existsSync(genFile)) r.bootedGeneration = Number(fs.readFileSync(genFile, "utf8"));
      await this.installTools(r);
      if (!h.tpi) {
        await this.prepareAlwaysOn(r);
      } else {
        const hk = path.join(hdir, "upper/etc/ssh/ssh_host_ed25519_key.pub");
        if (fs.existsSync(hk)) r.info.hostKey = (await fs.promises.readFile(hk, "utf8")).trim().split(/\s+/).slice(0, 2).join(" ");
      }
    }
    for (const h of this.spec.hosts.filter((x) => x.role === "bmc")) {
      const st: BmcState = { name: h.name, generation: {} };
      const bdir = path.join(dir, `bmc-${h.name}`);
      await fs.promises.mkdir(bdir, { recursive: true });
      for (const s of SLOTS) {
        const g = path.join(bdir, `slot${s}.generation`);
        st.generation[s] = fs.existsSync(g) ? Number(fs.readFileSync(g, "utf8")) : 0;
      }
      this.bmcs.set(h.name, st);
      await this.startBmcd(st, this.rt.get(h.name)!);
    }
    // start BMCs and always-on nodes (in parallel); slot nodes stay off until tpi powers them on, except
    // those that were powered when the lab last stopped (a lab restart is not a power cut of the boards)
    const poweredFile = path.join(dir, "powered-slots.json");
    const wasPowered: string[] = fs.existsSync(poweredFile) && !opts.fresh ? JSON.parse(fs.readFileSync(poweredFile, "utf8")) : [];
    await Promise.all(
      [...this.rt.values()]
        .filter((r) => !r.spec.tpi || wasPowered.includes(r.spec.name))
        .map(async (r) => {
          r.powered = true;
          if (r.spec.tpi) await this.powerOnHost(r);
          else await this.bootHost(r);
        }),
    );
    if (opts.ownerPid) {
      const t = setInterval(() => {
        if (!pidAlive(opts.ownerPid!)) void this.stop();
      }, 1000);
      t.unref();
      this.timers.push(t);
    }
    if (opts.maxLifetimeMs) {
      const t = setTimeout(() => void this.stop(), opts.maxLifetimeMs);
      t.unref();
      this.timers.push(t);
    }
    await this.writeState();
    this.log("lab up");
  }

  /** Per-host tools: reboot/poweroff/halt/shutdown on every host, tpi on BMCs. */
  private async installTools(r: HostRuntime): Promise<void> {
    const sbin = path.join(r.dir, "sbin");
    const rebootSh =
      "#!/bin/sh\n# isar-k3s lab: simulated reboot. Process 1 of this host (lab/node-init.sh) restarts the host on SIGHUP.\necho 'lab: rebooting' >&2\n(sleep 0.3; kill -HUP 1) </dev/null >/dev/null 2>&1 &\nexit 0\n";
    const poweroffSh =
      "#!/bin/sh\n# isar-k3s lab: simulated power off (SIGUSR1 to process 1).\n(sleep 0.3; kill -USR1 1) </dev/null >/dev/null 2>&1 &\nexit 0\n";
    const shutdownSh =
      '#!/bin/sh\n# isar-k3s lab: shutdown -r reboots, anything else powers off.\nfor a in "$@"; do case "$a" in -r|--reboot) exec /usr/local/sbin/reboot;; esac; done\nexec /usr/local/sbin/poweroff\n';
    await fs.promises.writeFile(path.join(sbin, "reboot"), rebootSh, { mode: 0o755 });
    await fs.promises.writeFile(path.join(sbin, "poweroff"), poweroffSh, { mode: 0o755 });
    await fs.promises.writeFile(path.join(sbin, "halt"), poweroffSh, { mode: 0o755 });
    await fs.promises.writeFile(path.join(sbin, "shutdown"), shutdownSh, { mode: 0o755 });
    if (r.spec.role !== "bmc" && this.spec.k3s) {
      // k3s stand-in wrappers in the node's /usr/local/bin (kept across a re-flash, like the real k3s binary in the image)
      const env = [
        `K3S_SIM_CLUSTER=${K3S_CLUSTER_MOUNT}`,
        `K3S_SIM_K8S=${K8S_MOUNT}`,
        `K3S_SIM_JOIN_SECONDS=${this.spec.k3s.joinSeconds ?? 1}`,
        ...Object.entries(this.spec.k3s.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ];
      await new Promise<void>((resolve, reject) =>
        execFile(process.execPath, [path.join(this.root, "lab", "k3s", "k3s"), "k3s-sim", "install-into", path.join(r.dir, "bin"), ...env], (e) =>
          e ? reject(e) : resolve(),
        ),
      );
    }
    if (r.spec.role === "bmc") {
      // the real tpi (a copy: the host's /root, where the build cache lives, is private to it)
      const dst = path.join(r.dir, "bin", "tpi");
      await fs.promises.copyFile(findTpi(this.root), dst + ".new");
      await fs.promises.chmod(dst + ".new", 0o755);
      await fs.promises.rename(dst + ".new", dst);
    }
  }

  /** Map a path of the host's view to its backing file on this machine (host must be off or the file outside overlays). */
  backingPath(name: string, p: string): string {
    const r = this.host(name);
    const top = p.split("/")[1];
    if (["etc", "var", "opt", "srv"].includes(top)) return path.join(r.dir, "upper", p);
    if (["root", "home", "mnt", "boot", "tmp", "run"].includes(top)) return path.join(r.dir, "fs", p);
    if (top === "dev") return path.join(r.dir, p);
    if (p.startsWith("/usr/local/bin/")) return path.join(r.dir, "bin", p.slice("/usr/local/bin/".length));
    if (p.startsWith("/usr/local/sbin/")) return path.join(r.dir, "sbin", p.slice("/usr/local/sbin/".length));
    throw new Error(`lab: ${p} is not a writable path of a lab host`);
  }

  /** A path that reads the host's file as the host sees it (through its running process 1), or its backing file when off. */
  hostPath(name: string, p: string): string {
    const r = this.host(name);
    if (r.up && r.initPid) return `/proc/${r.initPid}/root${p}`;
    return this.backingPath(name, p);
  }

  private host(name: string): HostRuntime {
    const r = this.rt.get(name);
    if (!r) throw new Error(`lab: no host named ${name} (hosts: ${[...this.rt.keys()].join(", ")})`);
    return r;
  }

  private async writeFileIn(r: HostRuntime, p: string, content: string | Buffer, mode = 0o644): Promise<void> {
    const f = this.backingPath(r.spec.name, p);
    await fs.promises.mkdir(path.dirname(f), { recursive: true });
    await fs.promises.writeFile(f, content, { mode });
    await fs.promises.chmod(f, mode);
  }

  /** BMC or SWUpdate node: host key, hostname, authorized keys, devices. Keeps what an earlier run left. */
  private async prepareAlwaysOn(r: HostRuntime): Promise<void> {
    const key = this.backingPath(r.spec.name, "/etc/ssh/ssh_host_ed25519_key");
    if (r.spec.hostKeyFile) {
      await fs.promises.mkdir(path.dirname(key), { recursive: true });
      await fs.promises.copyFile(path.resolve(r.spec.hostKeyFile), key);
      await fs.promises.chmod(key, 0o600);
      await fs.promises.writeFile(key + ".pub", (await publicKeyOf(key)) + "\n");
    } else if (!fs.existsSync(key)) await sshKeygen(key, `${r.spec.name}@isar-k3s-lab`);
    r.info.hostKey = await publicKeyOf(key);
    const hn = this.backingPath(r.spec.name, "/etc/hostname");
    if (!fs.existsSync(hn)) await this.writeFileIn(r, "/etc/hostname", (r.spec.hostname ?? r.spec.name) + "\n");
    if (r.spec.hwRevision && !fs.existsSync(this.backingPath(r.spec.name, "/etc/hwrevision")))
      await this.writeFileIn(r, "/etc/hwrevision", r.spec.hwRevision + "\n");
    const keys = [this.deployKey.publicKey, ...(this.spec.authorizedKeys ?? [])].join("\n") + "\n";
    await this.authorize(r, keys);
    if (r.spec.role === "node" && r.info.user !== "root") {
      // A node installed before us: its deploy user has sudo (without a password unless the spec says otherwise).
      const u = r.info.user;
      await this.writeFileIn(r, `/etc/sudoers.d/lab-${u}`, r.spec.sudoPassword ? `${u} ALL=(root) ALL\n` : `${u} ALL=(root) NOPASSWD: ALL\n`, 0o440);
    }
    if (r.spec.role === "bmc") await fs.promises.mkdir(this.backingPath(r.spec.name, "/mnt/sdcard"), { recursive: true });
    for (const [dev, size] of Object.entries(r.spec.swupdate?.devices ?? {})) {
      const f = path.join(r.dir, "dev", dev);
      if (!fs.existsSync(f)) {
        await fs.promises.writeFile(f, Buffer.alloc(0));
        await fs.promises.truncate(f, size);
      }
    }
  }

  /** Ensure the login user exists in the host's view and holds `keys` in its authorized_keys. */
  private async authorize(r: HostRuntime, keys: string | undefined): Promise<void> {
    const user = r.info.user;
    let home = "/root";
    let uid = 0;
    let gid = 0;
    if (user !== "root") {
      const passwdFile = this.backingPath(r.spec.name, "/etc/passwd");
      const passwd = fs.existsSync(passwdFile) ? await fs.promises.readFile(passwdFile, "utf8") : await fs.promises.readFile("/etc/passwd", "utf8");
      const line = passwd.split("\n").find((l) => l.startsWith(user + ":"));
      if (line) {
        const f = line.split(":");
        uid = Number(f[2]);
        gid = Number(f[3]);
        home = f[5];
      } else {
        const used = new Set(passwd.split("\n").map((l) => Number(l.split(":")[2])));
        uid = 1000;
        while (used.has(uid)) uid++;
        gid = uid;
        home = `/home/${user}`;
        await this.writeFileIn(r, "/etc/passwd", passwd.replace(/\n?$/, "\n") + `${user}:x:${uid}:${gid}:isar-k3s lab deploy user:${home}:/bin/bash\n`);
        const shadowSrc = fs.existsSync(this.backingPath(r.spec.name, "/etc/shadow")) ? this.backingPath(r.spec.name, "/etc/shadow") : "/etc/shadow";
        const shadow = await fs.promises.readFile(shadowSrc, "utf8");
        await this.writeFileIn(r, "/etc/shadow", shadow.replace(/\n?$/, "\n") + `${user}:*:19000:0:99999:7:::\n`, 0o640);
        const group = await fs.promises.readFile(
          fs.existsSync(this.backingPath(r.spec.name, "/etc/group")) ? this.backingPath(r.spec.name, "/etc/group") : "/etc/group",
          "utf8",
        );
        await this.writeFileIn(r, "/etc/group", group.replace(/\n?$/, "\n") + `${user}:x:${gid}:\n`);
      }
    }
    const sshDir = this.backingPath(r.spec.name, `${home}/.ssh`);
    await fs.promises.mkdir(path.dirname(sshDir), { recursive: true });
    await fs.promises.mkdir(sshDir, { recursive: true, mode: 0o700 });
    if (keys !== undefined) await fs.promises.writeFile(path.join(sshDir, "authorized_keys"), keys, { mode: 0o600 });
    if (uid !== 0) {
      await fs.promises.chown(this.backingPath(r.spec.name, home), uid, gid);
      await fs.promises.chown(sshDir, uid, gid);
      if (fs.existsSync(path.join(sshDir, "authorized_keys"))) await fs.promises.chown(path.join(sshDir, "authorized_keys"), uid, gid);
    }
  }

  /** The node's data disks: sparse files in HOSTDIR/disks, made (and formatted) once, kept across flashes. */
  private async attachDisks(r: HostRuntime): Promise<void> {
    for (const [name, d] of Object.entries(r.spec.disks ?? {})) {
      const f = path.join(r.dir, "disks", name);
      if (fs.existsSync(f) || fs.existsSync(f + ".detached")) continue;
      await fs.promises.mkdir(path.dirname(f), { recursive: true });
      await fs.promises.writeFile(f + ".new", Buffer.alloc(0));
      await fs.promises.truncate(f + ".new", d.sizeBytes);
      if (d.filesystem === "ext4") await execP("mkfs.ext4", ["-q", "-F", "-L", name, f + ".new"]);
      await fs.promises.rename(f + ".new", f);
    }
  }

  /** Attach or detach a data disk of a node (takes effect at its next boot), as plugging in or pulling the SSD would. */
  async setDiskAttached(name: string, disk: string, attached: boolean): Promise<void> {
    const r = this.host(name);
    const f = path.join(r.dir, "disks", disk);
    if (attached) {
      await fs.promises.rm(f + ".detached", { force: true });
      await this.attachDisks(r);
    } else {
      await fs.promises.rm(f, { force: true });
      await fs.promises.writeFile(f + ".detached", "");
    }
  }

  private sshdConfig(r: HostRuntime): string {
    const node = r.spec.role === "node";
    return [
      "# isar-k3s lab sshd config (generated)",
      // Nodes read the image's drop-ins first (as Debian's sshd_config does), so the image's
      // PermitRootLogin no / AuthorizedKeysFile win over the lab defaults below.
      ...(node ? ["Include /etc/ssh/sshd_config.d/*.conf"] : []),
      `ListenAddress ${r.info.address}:${r.info.port}`,
      "HostKey /etc/ssh/ssh_host_ed25519_key",
      "PidFile none",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      // Nodes with a deploy user refuse root like the images do; the BMC's firmware has only root.
      node && r.info.user !== "root" ? "PermitRootLogin no" : "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "UsePAM no",
      "StrictModes no",
      "UseDNS no",
      "PrintMotd no",
      "MaxStartups 100:30:200",
      "MaxSessions 100",
      "ClientAliveInterval 15",
      "AcceptEnv LANG LC_*",
      // tpi's own settings (clap env): on a real BMC tpi reaches its bmcd at 127.0.0.1:443; here every
      // host shares this machine's 127.0.0.1, so the BMC's sessions are pointed at the BMC's address
      ...(r.spec.role === "bmc" ? [`SetEnv TPI_HOSTNAME=${r.info.address}${this.bmcdPort !== BMCD_DEFAULT_PORT ? ` TPI_PORT=${this.bmcdPort}` : ""}`] : []),
      "Subsystem sftp /usr/lib/openssh/sftp-server",
      "",
    ].join("\n");
  }

  // ---------------------------------------------------------------- host processes

  /** Start the host's namespaces and sshd; resolves when sshd answers (bounded). */
  private async bootHost(r: HostRuntime): Promise<void> {
    if (this.stopped) return;
    if (r.proc) return;
    await this.writeFileIn(r, "/etc/ssh/sshd_config.lab", this.sshdConfig(r));
    await this.attachDisks(r);
    for (const d of ["tmp", "run"]) {
      await fs.promises.rm(path.join(r.dir, "fs", d), { recursive: true, force: true });
      await fs.promises.mkdir(path.join(r.dir, "fs", d), { recursive: true });
    }
    const logFd = fs.openSync(path.join(r.dir, "log"), "a");
    const seq = ++r.startSeq;
    r.intentionalStop = false;
    const child = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "--kill-child",
        "--",
        "bash",
        path.join(this.root, "lab", "node-init.sh"),
        r.dir,
        this.root,
      ],
      {
        stdio: ["ignore", logFd, logFd],
        env: this.spec.k3s && r.spec.role !== "bmc" ? { ...process.env, LAB_K8S_DIR: this.k8sDir(), LAB_K3S_LOG_DIR: this.k3sLogDir() } : process.env,
      },
    );
    fs.closeSync(logFd);
    r.proc = child;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.once("exit", (code, signal) => {
      if (r.proc === child) {
        r.proc = undefined;
        r.initPid = undefined;
        r.up = false;
      }
      this.log(`${r.spec.name}: host process ended (code ${code}, signal ${signal})`);
      if (this.stopped || r.intentionalStop || seq !== r.startSeq) return;
      if (code === 100) {
        r.uart += "\r\n[  OK  ] Reached target Reboot.\r\nreboot: Restarting system\r\n";
        setTimeout(() => void this.powerOnHost(r).catch((e) => this.log(`${r.spec.name}: reboot failed: ${e.message}`)), this.spec.bootDelayMs ?? 300).unref();
      } else {
        r.powered = false;
        void this.writeState();
      }
    });
    // the pid of process 1 (unshare's child)
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && r.proc === child) {
      const kids = fs.existsSync(`/proc/${child.pid}/task/${child.pid}/children`)
        ? fs.readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim()
        : "";
      if (kids) {
        r.initPid = Number(kids.split(/\s+/)[0]);
        break;
      }
      await sleep(20);
    }
    try {
      if (!r.initPid) throw new Error("namespace did not start");
      await waitForSsh(r.info.address, r.info.port, 15_000, () => r.proc === child);
    } catch (e) {
      const tail = fs.existsSync(path.join(r.dir, "log")) ? fs.readFileSync(path.join(r.dir, "log"), "utf8").split("\n").slice(-15).join("\n") : "";
      await this.killHost(r);
      await Promise.race([exited, limit(3000)]);
      throw new Error(`lab: host ${r.spec.name} (${r.info.address}:${r.info.port}) did not come up: ${(e as Error).message}\n${tail}`, { cause: e });
    }
    if (this.spec.k3s && r.spec.role !== "bmc") await this.bootK3s(r);
    if (r.spec.role === "bmc") await this.applySdcard(r);
    r.up = true;
    const hostname = fs.existsSync(this.hostPath(r.spec.name, "/etc/hostname"))
      ? fs.readFileSync(this.hostPath(r.spec.name, "/etc/hostname"), "utf8").trim()
      : r.spec.name;
    r.uart += `\r\n[    0.000000] Booting Linux on physical CPU 0x0\r\n[    2.104000] EXT4-fs (mmcblk0p1): mounted filesystem\r\n\r\nDebian GNU/Linux ${hostname} ttyS0\r\n\r\n${hostname} login: `;
    this.log(`${r.spec.name}: up at ${r.info.address}:${r.info.port} (process 1 = ${r.initPid})`);
    await this.writeState();
  }

  private async killHost(r: HostRuntime): Promise<void> {
    const proc = r.proc;
    if (!proc) return;
    r.intentionalStop = true;
    const exited = new Promise<void>((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve() : proc.once("exit", () => resolve())));
    if (r.initPid) {
      try {
        process.kill(r.initPid, "SIGKILL");
      } catch {
        /* already gone */
      }
    } else proc.kill("SIGKILL");
    await Promise.race([exited, limit(5000)]);
    if (r.proc === proc) {
      proc.kill("SIGKILL");
      r.proc = undefined;
    }
    r.up = false;
    r.initPid = undefined;
  }

  /** Power a host on: slot nodes boot the flashed eMMC (if it holds a root filesystem), others restart. */
  private async powerOnHost(r: HostRuntime): Promise<void> {
    r.powered = true;
    if (r.proc) return;
    if (this.faults.some((f) => f.kind === "never-boot" && f.node === r.spec.name)) {
      r.uart += "\r\nU-Boot SPL 2017.09\r\nTrying to boot from MMC2\r\n";
      this.log(`${r.spec.name}: fault never-boot: powered but not booting`);
      return;
    }
    if (r.spec.tpi) {
      const ok = await this.prepareSlotBoot(r);
      if (!ok) return;
    } else if (r.spec.swupdate) {
      await this.prepareSwupdateBoot(r);
    }
    await this.bootHost(r);
  }

  private emmcPath(bmc: string, slot: number): string {
    return path.join(this.dir, `bmc-${bmc}`, `slot${slot}.img`);
  }

  /** Wipe and re-seed a slot node from a newly flashed eMMC. Returns false when there is nothing bootable. */
  private async prepareSlotBoot(r: HostRuntime): Promise<boolean> {
    const { bmc, slot } = r.spec.tpi!;
    const img = this.emmcPath(bmc, slot);
    const gen = this.bmcs.get(bmc)?.generation[slot] ?? 0;
    if (!fs.existsSync(img) || gen === 0) {
      r.uart += "\r\nNo bootable device found\r\n";
      this.log(`${r.spec.name}: eMMC empty, not booting`);
      return false;
    }
    if (r.bootedGeneration === gen) return true; // same eMMC as last boot: keep state
    const off = await findRootFilesystem(img);
    if (off === undefined) {
      r.uart += '\r\nWrong image format for "source" command\r\nNo bootable device found\r\n';
      this.log(`${r.spec.name}: flashed eMMC has no ext4 root filesystem with /etc, not booting`);
      return false;
    }
    for (const d of ["upper", "work", "fs", "dev"]) {
      await fs.promises.rm(path.join(r.dir, d), { recursive: true, force: true });
      await fs.promises.mkdir(path.join(r.dir, d), { recursive: true });
    }
    const stage = path.join(r.dir, "stage");
    await fs.promises.rm(stage, { recursive: true, force: true });
    await fs.promises.mkdir(stage, { recursive: true });
    const user = r.info.user;
    const files = [...BOOT_FILES, ...(user !== "root" ? [`/home/${user}/.ssh/authorized_keys`] : [])];
    const got = await extractFromImage(img, off, stage, files, BOOT_DIRS);
    for (const p of got) {
      const dst = this.backingPath(r.spec.name, p);
      await fs.promises.mkdir(path.dirname(dst), { recursive: true });
      await fs.promises.rm(dst, { recursive: true, force: true });
      await fs.promises.rename(path.join(stage, p), dst);
    }
    await fs.promises.rm(stage, { recursive: true, force: true });
    const key = this.backingPath(r.spec.name, "/etc/ssh/ssh_host_ed25519_key");
    if (!got.includes("/etc/ssh/ssh_host_ed25519_key")) await sshKeygen(key, `root@${r.spec.name}`); // first boot generates the host key
    await fs.promises.chmod(key, 0o600);
    r.info.hostKey = await publicKeyOf(key);
    await this.authorize(r, undefined);
    r.bootedGeneration = gen;
    await fs.promises.writeFile(path.join(r.dir, "booted-generation"), String(gen));
    this.log(`${r.spec.name}: booting eMMC generation ${gen} (${got.length} files from the image: ${got.join(" ")})`);
    return true;
  }

  /** SWUpdate node: boot the most recently written root device if it is newer than what was booted. */
  private async prepareSwupdateBoot(r: HostRuntime): Promise<void> {
    const devs = r.spec.swupdate!.rootDevices ?? Object.keys(r.spec.swupdate!.devices);
    let best: { dev: string; mtime: number } | undefined;
    for (const d of devs) {
      const f = path.join(r.dir, "dev", d);
      if (!fs.existsSync(f)) continue;
      const m = fs.statSync(f).mtimeMs;
      if (!best || m > best.mtime) best = { dev: d, mtime: m };
    }
    const markFile = path.join(r.dir, "booted-rootdev");
    const mark = best ? `${best.dev} ${best.mtime}` : "";
    if (!best || (fs.existsSync(markFile) && fs.readFileSync(markFile, "utf8") === mark)) return;
    const img = path.join(r.dir, "dev", best.dev);
    const off = await findRootFilesystem(img);
    if (off === undefined) return;
    const stage = path.join(r.dir, "stage");
    await fs.promises.rm(stage, { recursive: true, force: true });
    await fs.promises.mkdir(stage, { recursive: true });
    const got = await extractFromImage(
      img,
      off,
      stage,
      BOOT_FILES.filter((f) => !f.startsWith("/root/")),
      BOOT_DIRS,
    );
    for (const p of got) {
      const dst = this.backingPath(r.spec.name, p);
      await fs.promises.mkdir(path.dirname(dst), { recursive: true });
      await fs.promises.rm(dst, { recursive: true, force: true });
      await fs.promises.rename(path.join(stage, p), dst);
    }
    await fs.promises.rm(stage, { recursive: true, force: true });
    if (got.includes("/etc/ssh/ssh_host_ed25519_key")) r.info.hostKey = await publicKeyOf(this.backingPath(r.spec.name, "/etc/ssh/ssh_host_ed25519_key"));
    await fs.promises.writeFile(markFile, mark);
    this.log(`${r.spec.name}: booting root device /dev/${best.dev} (${got.join(" ")})`);
  }

  // ---------------------------------------------------------------- public controls

  /** Power a host on (slot nodes: as `tpi power on` would). */
  async powerOn(name: string): Promise<void> {
    await this.powerOnHost(this.host(name));
  }

  /** Cut a host's power: every process of the host ends at once. */
  async powerOff(name: string): Promise<void> {
    const r = this.host(name);
    r.powered = false;
    await this.killHost(r);
    await this.writeState();
  }

  /** Reboot as `reboot` on the host would (power cycle, then boot). */
  async reboot(name: string): Promise<void> {
    const r = this.host(name);
    await this.killHost(r);
    await sleep(this.spec.bootDelayMs ?? 300);
    await this.powerOnHost(r);
  }

  private k8sDirCache?: string;
  /** The Kubernetes components' directory on this machine (checked once). */
  private k8sDir(): string {
    return (this.k8sDirCache ??= k8sComponentsDir(this.root, this.spec.k3s?.k8sDir));
  }

  /** The shared k3s log directory, created (0700). */
  private k3sLogDir(): string {
    const d = path.join(path.resolve(this.dir), "k3s-cluster");
    fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    return d;
  }

  /** This lab's k3s observation logs on this machine (join.log, argv.log), when the lab runs k3s. */
  get k3sClusterDir(): string | undefined {
    return this.spec.k3s ? path.join(path.resolve(this.dir), "k3s-cluster") : undefined;
  }

  /**
   * The node's boot, k3s part (the shared log directory and the components are bound by node-init.sh):
   * its enabled k3s units started inside the node's namespaces (they die with the node on power off).
   */
  private async bootK3s(r: HostRuntime): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      execFile("nsenter", ["-t", String(r.initPid), "-m", "-u", "-p", "-r", "-w", "--", "/usr/local/bin/k3s-sim", "boot"], { timeout: 30_000 }, (e, _o, err) =>
        e ? reject(new Error(`k3s-sim boot on ${r.spec.name}: ${err || e.message}`)) : resolve(),
      ),
    );
  }

  /**
   * Install an executable on a host's PATH (/usr/local/bin, e.g. a k3s or kubectl stand-in), or with
   * `boot: true` as a boot hook (/etc/lab/boot.d/<name>, started in the background at every boot).
   * Takes effect at once for tools; boot hooks from the next boot.
   */
  async installTool(name: string, fileName: string, content: string | Buffer, opts: { boot?: boolean } = {}): Promise<string> {
    if (!/^[A-Za-z0-9._-]+$/.test(fileName)) throw new Error(`lab: tool name ${JSON.stringify(fileName)} must be a plain file name`);
    const r = this.host(name);
    const viewPath = opts.boot ? `/etc/lab/boot.d/${fileName}` : `/usr/local/bin/${fileName}`;
    const f = opts.boot && r.up ? this.hostPath(name, viewPath) : this.backingPath(name, viewPath);
    await fs.promises.mkdir(path.dirname(f), { recursive: true });
    await fs.promises.writeFile(f, content, { mode: 0o755 });
    await fs.promises.chmod(f, 0o755);
    return viewPath;
  }

  /** Processes of a host (host pids): [{pid, ppid, cmd}]. */
  processes(name: string): { pid: number; ppid: number; cmd: string }[] {
    const r = this.host(name);
    if (!r.initPid) return [];
    let ns: string;
    try {
      ns = fs.readlinkSync(`/proc/${r.initPid}/ns/pid`);
    } catch {
      return [];
    }
    const out: { pid: number; ppid: number; cmd: string }[] = [];
    for (const e of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        if (fs.readlinkSync(`/proc/${e}/ns/pid`) !== ns) continue;
        const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const cmd = fs
          .readFileSync(`/proc/${e}/cmdline`, "utf8")
          .split("\0")
          .filter((s) => s)
          .join(" ");
        out.push({ pid: Number(e), ppid, cmd });
      } catch {
        /* process ended */
      }
    }
    return out;
  }

  /** Pids of the per-connection sshd processes of a host (the monitor and the session child below its listening sshd). */
  sshSessionPids(name: string): number[] {
    const procs = this.processes(name);
    const listener = procs.find((p) => p.cmd.includes("sshd") && p.cmd.includes("-D"));
    if (!listener) return [];
    const session = new Set<number>();
    let grew = true;
    while (grew) {
      grew = false;
      for (const p of procs) {
        if (session.has(p.pid) || !p.cmd.startsWith("sshd:")) continue;
        if (p.ppid === listener.pid || session.has(p.ppid)) {
          session.add(p.pid);
          grew = true;
        }
      }
    }
    return [...session];
  }

  /**
   * The BMC's SD card: without one (fault no-sdcard) /mnt/sdcard is an empty directory of the BMC's small
   * root file system (a tmpfs of NO_SDCARD_ROOTFS_BYTES mounted over it in the BMC's namespace); with
   * one, the card's files (HOSTDIR/fs/mnt/sdcard) are back.
   */
  private async applySdcard(r: HostRuntime): Promise<void> {
    if (!r.up || !r.initPid) return;
    const missing = this.faults.some((f) => f.kind === "no-sdcard" && (!f.bmc || f.bmc === r.spec.name));
    const script = missing
      ? 'mkdir -p /mnt/sdcard; mountpoint -q /mnt/sdcard || mount -t tmpfs -o size="$1",mode=0755 lab-no-sdcard /mnt/sdcard'
      : "! mountpoint -q /mnt/sdcard || umount -l /mnt/sdcard";
    await execP("nsenter", ["-t", String(r.initPid), "-m", "-p", "-r", "-w", "--", "sh", "-c", script, "sh", String(NO_SDCARD_ROOTFS_BYTES)], {
      timeout: 30_000,
    });
  }

  async setFault(f: LabFault): Promise<void> {
    this.faults.push(f);
    this.log(`fault set: ${JSON.stringify(f)}`);
    if (f.kind === "no-sdcard") for (const r of this.rt.values()) if (r.spec.role === "bmc") await this.applySdcard(r);
    if (f.kind === "bmc-unreachable") {
      for (const r of this.rt.values()) if (r.spec.role === "bmc" && (!f.bmc || f.bmc === r.spec.name)) await this.killHost(r);
    }
    await this.writeState();
  }

  async clearFaults(kind?: LabFault["kind"]): Promise<void> {
    const cleared = this.faults.filter((f) => !kind || f.kind === kind);
    this.faults = this.faults.filter((f) => kind && f.kind !== kind);
    this.log(`faults cleared: ${JSON.stringify(cleared)}`);
    if (cleared.some((f) => f.kind === "bmc-unreachable")) {
      for (const r of this.rt.values()) if (r.spec.role === "bmc" && !r.proc) await this.bootHost(r);
    }
    if (cleared.some((f) => f.kind === "no-sdcard")) for (const r of this.rt.values()) if (r.spec.role === "bmc") await this.applySdcard(r);
    await this.writeState();
  }

  status(): LabStatus {
    const hosts: LabStatus["hosts"] = {};
    for (const r of this.rt.values()) hosts[r.spec.name] = { ...r.info, up: r.up, powered: r.powered, initPid: r.initPid };
    return { dir: path.resolve(this.dir), hosts, faults: [...this.faults] };
  }

  private async writeState(): Promise<void> {
    if (this.stopped) return;
    const st = { ...this.status(), pid: process.pid, deployKeyFile: this.deployKey.path, bmcdPort: this.bmcdPort };
    const tmp = path.join(this.dir, `lab.json.${process.pid}.${++this.stateSeq}.tmp`);
    await fs.promises.writeFile(tmp, JSON.stringify(st, null, 2));
    await fs.promises.rename(tmp, path.join(this.dir, "lab.json"));
  }

  /** Serve status/stop/fault/power on a unix socket (used by the CLI for a detached lab). */
  async serveControl(onStop: () => void): Promise<string> {
    const sock = path.join(this.dir, "ctl.sock");
    await fs.promises.rm(sock, { force: true });
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        void (async () => {
          try {
            const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
            if (req.url === "/status") return void res.end(JSON.stringify(this.status()));
            if (req.url === "/stop") {
              res.end("{}");
              await this.stop();
              onStop();
              return;
            }
            if (req.url === "/fault") {
              if (body.clear) await this.clearFaults(body.clear === true ? undefined : body.clear);
              else await this.setFault(body as LabFault);
              return void res.end(JSON.stringify(this.status().faults));
            }
            if (req.url === "/power") {
              if (body.action === "on") await this.powerOn(body.host);
              else if (body.action === "off") await this.powerOff(body.host);
              else await this.reboot(body.host);
              return void res.end("{}");
            }
            res.statusCode = 404;
            res.end(JSON.stringify({ error: "unknown request" }));
          } catch (e) {
            res.statusCode = 500;
            res.end(JSON.stringify({ error: (e as Error).message }));
          }
        })();
      });
    });
    await new Promise<void>((resolve, reject) => server.listen(sock, resolve).once("error", reject));
    this.ctlServer = server;
    return sock;
  }

  /** Stop every host and server of the lab. Idempotent; bounded (~5 s per host at worst). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    try {
      const powered = [...this.rt.values()].filter((r) => r.spec.tpi && r.powered).map((r) => r.spec.name);
      fs.writeFileSync(path.join(this.dir, "powered-slots.json"), JSON.stringify(powered));
    } catch {
      /* dir removed */
    }
    await Promise.all([...this.rt.values()].map((r) => this.killHost(r)));
    for (const b of this.bmcs.values()) await b.bmcd?.close();
    if (this.ctlServer) {
      this.ctlServer.close();
      await fs.promises.rm(path.join(this.dir, "ctl.sock"), { force: true });
    }
    for (const r of this.rt.values()) r.powered = false;
    try {
      const st = { ...this.status(), stopped: true };
      fs.writeFileSync(path.join(this.dir, "lab.json"), JSON.stringify(st, null, 2));
      this.log("lab stopped");
    } catch {
      /* dir removed */
    }
  }

  // ---------------------------------------------------------------- bmcd

  private slotNode(bmc: string, slot: number): HostRuntime | undefined {
    return [...this.rt.values()].find((r) => r.spec.tpi?.bmc === bmc && r.spec.tpi.slot === slot);
  }

  private emptyPower: Record<string, boolean> = {};

  private slotPowered(bmc: string, slot: number): boolean {
    return this.slotNode(bmc, slot)?.powered ?? this.emptyPower[`${bmc}/${slot}`] ?? false;
  }

  private async setSlotPower(bmc: string, slot: number, on: boolean): Promise<void> {
    const r = this.slotNode(bmc, slot);
    if (!r) {
      this.emptyPower[`${bmc}/${slot}`] = on;
      return;
    }
    if (!on) await this.powerOff(r.spec.name);
    else if (!r.powered || !r.proc) void this.powerOnHost(r).catch((e) => this.log(`${r.spec.name}: boot failed: ${e.message}`));
  }

  /** The BMC's serial console line to a node: the node's root shell runs it. */
  private async uartWrite(bmc: string, slot: number, line: string): Promise<void> {
    const r = this.slotNode(bmc, slot);
    if (!r) return;
    r.uart += line + "\r\n";
    if (r.up && r.initPid) {
      const out = await execP("nsenter", ["-t", String(r.initPid), "-m", "-u", "-p", "-r", "-w", "--", "sh", "-c", line], {
        timeout: 30_000,
        maxBuffer: 1 << 20,
      }).then(
        (o) => o.stdout + o.stderr,
        (e: { stdout?: string; stderr?: string }) => (e.stdout ?? "") + (e.stderr ?? ""),
      );
      r.uart += out.replace(/\n/g, "\r\n") + `root@${r.spec.hostname ?? r.spec.name}:~# `;
    }
  }

  private flashFault(bmc: string, slot: number): BmcFlashFault | undefined {
    for (const f of this.faults) {
      if (f.kind === "flash-error" && (f.slot === undefined || f.slot === slot)) return { kind: "emmc-write-error", message: f.message };
      if (f.kind === "crc-mismatch" && (f.slot === undefined || f.slot === slot)) return { kind: "crc-mismatch" };
    }
    void bmc;
    return undefined;
  }

  private async startBmcd(st: BmcState, r: HostRuntime): Promise<void> {
    const bdir = path.join(this.dir, `bmc-${st.name}`);
    const bmcd = new Bmcd({
      name: st.name,
      address: r.info.address,
      reachable: () => r.up && !this.faults.some((f) => f.kind === "bmc-unreachable" && (!f.bmc || f.bmc === st.name)),
      slotPowered: (slot) => this.slotPowered(st.name, slot),
      setSlotPower: (slot, on) => this.setSlotPower(st.name, slot, on),
      resetSlot: async (slot) => {
        const n = this.slotNode(st.name, slot);
        if (!n) return;
        await this.killHost(n);
        void (async () => {
          await sleep(this.spec.bootDelayMs ?? 300);
          await this.powerOnHost(n);
        })().catch((e) => this.log(`${n.spec.name}: boot failed: ${e.message}`));
      },
      uartRead: (slot) => {
        const n = this.slotNode(st.name, slot);
        const out = n?.uart ?? "";
        if (n) n.uart = "";
        return out;
      },
      uartWrite: (slot, line) => this.uartWrite(st.name, slot, line),
      bmcPath: (p) => {
        const full = path.posix.resolve("/", p);
        if (r.up && r.initPid) return `/proc/${r.initPid}/root${full}`;
        return full.startsWith("/mnt/") ? this.backingPath(st.name, full) : full;
      },
      emmcFile: (slot) => this.emmcPath(st.name, slot),
      flashFault: (slot) => this.flashFault(st.name, slot),
      flashWritten: async (slot, ok) => {
        st.generation[slot]++;
        await fs.promises.writeFile(path.join(bdir, `slot${slot}.generation`), String(st.generation[slot]));
        this.log(`bmcd ${st.name}: eMMC of node ${slot} written (${ok ? "ok" : "failed"})`);
      },
      flashRateBytesPerSec: (this.spec.flashRateMBps ?? 100) * 1e6,
      rebootBmc: () => {
        void (async () => {
          await this.killHost(r);
          await sleep(this.spec.bootDelayMs ?? 300);
          r.powered = true;
          await this.bootHost(r);
        })().catch((e) => this.log(`bmc reboot failed: ${e.message}`));
      },
      log: (m) => this.log(m),
    });
    await bmcd.listen(this.bmcdPort, await ensureCertificate(bdir));
    st.bmcd = bmcd;
  }

  /** The BMC's flash status as its API reports it (`opt=get&type=flash`). */
  flashStatus(bmc: string): unknown {
    const st = this.bmcs.get(bmc);
    if (!st?.bmcd) throw new Error(`lab: no BMC named ${bmc}`);
    return st.bmcd.flashStatus();
  }
}

/** Start a lab described by `spec` in `dir` (created; reused keys and disks unless `fresh`). */
export async function startLab(spec: LabSpec, dir: string, opts: StartOptions = {}): Promise<Lab> {
  validateSpec(spec);
  const resolved = await allocateAddresses(spec);
  const lab = new Lab(resolved, dir);
  try {
    await lab.start(opts);
  } catch (e) {
    await lab.stop();
    throw e;
  }
  return lab;
}
