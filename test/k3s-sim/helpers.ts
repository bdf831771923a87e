/**
 * Test helpers for the k3s stand-in (lab/k3s): simulated nodes as plain directories (K3S_SIM_ROOT)
 * sharing one cluster directory (K3S_SIM_CLUSTER), driven through the same executables the lab installs
 * (wrappers written by `k3s k3s-sim install-into`), with child_process and argv arrays only.
 */
import { execFile, execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { stringify } from "yaml";

export const LAB_K3S = path.resolve(__dirname, "../../lab/k3s");
export const NODE = process.execPath;
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
    const envArgs = Object.entries({ K3S_SIM_ROOT: root, K3S_SIM_CLUSTER: this.dir, ...this.env }).map(([k, v]) => `${k}=${v}`);
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

  /** Stop every k3s process this cluster's nodes started (killall on each node, then any pid left in status files). */
  async shutdown(): Promise<void> {
    for (const n of this.nodes) {
      const k = path.join(n.bin, "k3s-killall.sh");
      if (fs.existsSync(k)) await run(["sh", k], {}, 30_000);
    }
    const st = this.file("status");
    if (fs.existsSync(st)) {
      for (const f of fs.readdirSync(st)) {
        try {
          const rec = JSON.parse(fs.readFileSync(path.join(st, f), "utf8")) as { pid?: number; pidStart?: string; pidns?: string };
          // only a process this test started: same PID namespace and the same start time as recorded
          if (rec.pid && SIM_UTIL.processAlive(rec) === true) process.kill(rec.pid, "SIGKILL");
        } catch {
          // already gone
        }
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
