/**
 * Test helpers for lab/k3s: nodes as plain directories (K3S_SIM_ROOT) on their own loopback addresses,
 * each running real components (etcd, kube-apiserver, controllers, kwok from scripts/k8s-components.sh),
 * sharing one observation log directory (K3S_SIM_CLUSTER: argv.log, join.log), driven through the same
 * executables the lab installs (wrappers written by `k3s k3s-sim install-into`), with argv arrays only.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";
import { k8sComponentsDir } from "../../lab/lab";

export const LAB_K3S = path.resolve(__dirname, "../../lab/k3s");
export const NODE = process.execPath;
/** The Kubernetes components (fails with how to build them when they are missing). */
export const K8S_DIR = k8sComponentsDir(path.resolve(__dirname, "../.."));
const SIM_UTIL = require(path.join(LAB_K3S, "lib/util.js")) as { processAlive(rec: unknown): boolean | undefined };

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(argv: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === "number" ? (err as unknown as { code: number }).code : 1) : 0;
      resolve({ code, stdout: stdout.toString(), stderr: stderr.toString(), ms: Date.now() - t0 });
    });
  });
}

export class SimCluster {
  readonly dir: string;
  readonly nodes: SimNode[] = [];
  constructor(
    readonly base: string,
    readonly env: Record<string, string> = {},
  ) {
    this.dir = path.join(base, "cluster");
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** A new node root (a "freshly flashed board"): hostname, config.yaml, 0600 token file, stand-in executables. */
  node(name: string, opts: { dir?: string; hostname?: string; config: Record<string, unknown>; token?: string; dropins?: Record<string, string> }): SimNode {
    const root = path.join(this.base, opts.dir ?? name);
    fs.rmSync(root, { recursive: true, force: true });
    fs.mkdirSync(path.join(root, "etc/rancher/k3s"), { recursive: true });
    fs.writeFileSync(path.join(root, "etc/hostname"), `${opts.hostname ?? name}\n`);
    fs.writeFileSync(path.join(root, "etc/rancher/k3s/config.yaml"), stringify(opts.config, { lineWidth: 0 }), { mode: 0o600 });
    for (const [f, text] of Object.entries(opts.dropins ?? {})) {
      fs.mkdirSync(path.join(root, "etc/rancher/k3s/config.yaml.d"), { recursive: true });
      fs.writeFileSync(path.join(root, "etc/rancher/k3s/config.yaml.d", f), text);
    }
    if (opts.token !== undefined) fs.writeFileSync(path.join(root, "etc/rancher/k3s/token"), opts.token + "\n", { mode: 0o600 });
    const envArgs = Object.entries({ K3S_SIM_ROOT: root, K3S_SIM_CLUSTER: this.dir, K3S_SIM_K8S: K8S_DIR, ...this.env }).map(([k, v]) => `${k}=${v}`);
    execFileSync(NODE, [path.join(LAB_K3S, "k3s"), "k3s-sim", "install-into", path.join(root, "usr/local/bin"), ...envArgs], {
      env: { ...process.env, K3S_SIM_CLUSTER: this.dir },
    });
    const n = new SimNode(name, root, this);
    this.nodes.push(n);
    return n;
  }

  file(rel: string): string {
    return path.join(this.dir, rel);
  }

  joinLog(): { ts: string; tsMs: number; node: string; role: string; event: string; detail?: string }[] {
    const p = this.file("join.log");
    if (!fs.existsSync(p)) return [];
    return fs
      .readFileSync(p, "utf8")
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  event(node: string, event: string): number {
    const e = this.joinLog().filter((x) => x.node === node && x.event === event);
    if (!e.length) throw new Error(`no ${event} event for ${node} in join.log`);
    return e[e.length - 1].tsMs;
  }

  /** Stop every k3s process this cluster's nodes started (killall on each node, then any k3s or component left). */
  async shutdown(): Promise<void> {
    for (const n of this.nodes) {
      const k = path.join(n.bin, "k3s-killall.sh");
      if (fs.existsSync(k)) await run(["sh", k], {}, 30_000);
    }
    for (const n of this.nodes) {
      try {
        const rec = JSON.parse(fs.readFileSync(n.path("run/k3s-sim/daemon.json"), "utf8")) as { pid?: number };
        // only a process this test started: same PID namespace and the same start time as recorded
        if (rec.pid && SIM_UTIL.processAlive(rec) === true) process.kill(rec.pid, "SIGKILL");
      } catch {
        // none
      }
      try {
        for (const line of fs.readFileSync(n.path("run/k3s-sim/children"), "utf8").split("\n")) {
          const pid = Number(line.split(" ")[0]);
          if (pid) process.kill(pid, "SIGKILL");
        }
      } catch {
        // none, or gone
      }
    }
  }
}

export class SimNode {
  readonly bin: string;
  constructor(
    readonly name: string,
    readonly root: string,
    readonly cluster: SimCluster,
  ) {
    this.bin = path.join(root, "usr/local/bin");
  }
  path(p: string): string {
    return path.join(this.root, p);
  }
  install(role: "server" | "agent", env: Record<string, string> = {}): Promise<RunResult> {
    return run(["sh", path.join(this.bin, "k3s-install.sh")], { INSTALL_K3S_SKIP_DOWNLOAD: "true", INSTALL_K3S_EXEC: role, ...env }, 90_000);
  }
  kubectl(...args: string[]): Promise<RunResult> {
    return run([path.join(this.bin, "kubectl"), ...args]);
  }
  k3s(...args: string[]): Promise<RunResult> {
    return run([path.join(this.bin, "k3s"), ...args]);
  }
  systemctl(...args: string[]): Promise<RunResult> {
    return run([path.join(this.bin, "systemctl"), ...args], {}, 90_000);
  }
  script(name: string): Promise<RunResult> {
    return run([path.join(this.bin, name)], {}, 60_000);
  }
  /** `etcdctl member list` against this server's etcd (its own client certificate): [{name, learner}]. */
  async etcdMembers(): Promise<{ name: string; learner: boolean }[]> {
    const ip = (JSON.parse(fs.readFileSync(this.path("run/k3s-sim/daemon.json"), "utf8")) as { nodeIp: string }).nodeIp;
    const tls = this.path("var/lib/rancher/k3s/server/tls/etcd");
    const r = await run(
      [
        path.join(K8S_DIR, "bin/etcdctl"),
        `--endpoints=https://${ip}:2379`,
        `--cacert=${tls}/server-ca.crt`,
        `--cert=${tls}/client.crt`,
        `--key=${tls}/client.key`,
        "member",
        "list",
      ],
      { ETCDCTL_API: "3" },
    );
    if (r.code !== 0) throw new Error(`etcdctl member list on ${this.name}: ${r.stderr}`);
    return r.stdout
      .trim()
      .split("\n")
      .map((l) => l.split(", "))
      .map((f) => ({ name: f[2], learner: f[5] === "true" }));
  }
}

/** Poll `check` every 500 ms until it is true or `ms` passed; the last answer. */
export async function eventually(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function tempBase(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `k3s-sim-${tag}-`));
}

/** Every regular file under dir (recursively), for leak scans. */
export function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function serverConfig(ip: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    "node-ip": ip,
    "token-file": "/etc/rancher/k3s/token",
    "cluster-cidr": "10.42.0.0/16",
    "service-cidr": "10.43.0.0/16",
    "cluster-dns": "10.43.0.10",
    disable: ["traefik", "servicelb"],
    "secrets-encryption": true,
    "kubelet-arg": [],
    "protect-kernel-defaults": false,
    "tls-san": [ip],
    "write-kubeconfig-mode": "0600",
    ...extra,
  };
}
