/**
 * Test helpers for the k3s suites: a Host wrapper that records every command our code sends (argv,
 * env names and values, whether stdin was used), and a sampler of every process's argv and environment
 * on this machine (the lab's hosts are namespaces of it), to prove a secret never was a process argument.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import type { Host, RunOptions, RunResult, UploadOptions, UploadResult } from "../../lib/transport/host";

export interface Recorded {
  host: string;
  argv: string[];
  env: Record<string, string>;
  stdinBytes: number;
}

/** Wraps a Host; every `run` is appended to `log`. */
export class RecordingHost implements Host {
  constructor(
    private readonly inner: Host,
    readonly log: Recorded[],
  ) {}
  get label(): string {
    return this.inner.label;
  }
  run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    const s = opts?.stdin;
    this.log.push({
      host: this.inner.label,
      argv: [...argv],
      env: { ...(opts?.env ?? {}) },
      stdinBytes: typeof s === "string" ? Buffer.byteLength(s) : Buffer.isBuffer(s) ? s.length : s ? -1 : 0,
    });
    return this.inner.run(argv, opts);
  }
  upload(localPath: string, remotePath: string, opts?: UploadOptions): Promise<UploadResult> {
    this.log.push({ host: this.inner.label, argv: ["<upload>", localPath, remotePath], env: {}, stdinBytes: 0 });
    return this.inner.upload(localPath, remotePath, opts);
  }
  readFile(p: string, opts?: { timeoutMs?: number }): Promise<Buffer> {
    return this.inner.readFile(p, opts);
  }
  sha256(p: string, opts?: { timeoutMs?: number }): Promise<string | undefined> {
    return this.inner.sha256(p, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Samples /proc/<pid>/cmdline and /proc/<pid>/environ of every process every `everyMs` and remembers
 * any that contains one of the needles. Sampling can miss very short processes: it complements the
 * recorded commands and the stand-in's argv log, it does not replace them.
 */
export class ProcWatcher {
  readonly hits: { pid: string; where: "cmdline" | "environ"; text: string }[] = [];
  samples = 0;
  processesSeen = new Set<string>();
  private timer?: NodeJS.Timeout;
  constructor(
    private readonly needles: () => string[],
    private readonly everyMs = 40,
  ) {}
  start(): void {
    const tick = () => {
      this.scan();
      this.timer = setTimeout(tick, this.everyMs);
    };
    tick();
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
  private scan(): void {
    const needles = this.needles().filter((n) => n.length >= 8);
    this.samples++;
    let pids: string[];
    try {
      pids = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && p !== String(process.pid));
    } catch {
      return;
    }
    for (const pid of pids) {
      for (const where of ["cmdline", "environ"] as const) {
        let text: string;
        try {
          text = fs.readFileSync(`/proc/${pid}/${where}`, "latin1");
        } catch {
          continue;
        }
        if (where === "cmdline") this.processesSeen.add(`${pid}:${text.split("\0")[0]}`);
        for (const n of needles) if (text.includes(n)) this.hits.push({ pid, where, text: text.replace(/\0/g, " ").slice(0, 200) });
      }
    }
  }
}

/** Every file under `dir` (recursively) whose bytes contain `needle`, except the `allowed` predicate's. */
export function filesContaining(dir: string, needle: string, allowed: (p: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          if (fs.statSync(p).size > 64 << 20) continue;
          if (fs.readFileSync(p).includes(needle) && !allowed(p)) out.push(p);
        } catch {
          /* vanished */
        }
      }
    }
  };
  walk(dir);
  return out;
}

/**
 * The bin directory of the Pulumi CLI built by scripts/pulumi-toolchain.sh (PULUMI_BIN_DIR, the pinned
 * .pulumi-bin-dir, else the newest under the cache), or undefined when none is installed.
 */
export function findPulumiBin(root = path.resolve(__dirname, "../..")): string | undefined {
  const cands: string[] = [];
  if (process.env.PULUMI_BIN_DIR) cands.push(process.env.PULUMI_BIN_DIR);
  const pinned = path.join(root, ".pulumi-bin-dir");
  if (fs.existsSync(pinned)) cands.push(fs.readFileSync(pinned, "utf8").trim());
  const cache = path.join(process.env.ISAR_K3S_CACHE ?? path.join(os.homedir(), ".cache/isar-k3s"), "pulumi");
  if (fs.existsSync(cache))
    for (const v of fs
      .readdirSync(cache)
      .filter((d) => /^v\d/.test(d))
      .sort()
      .reverse())
      cands.push(path.join(cache, v, "bin"));
  return cands.find((d) => ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"].every((b) => fs.existsSync(path.join(d, b))));
}

/**
 * A Pulumi project for the engine-level suites: `program` as index.js (it loads the compiled providers
 * from $K3S_E2E_BIN), this repository's node_modules, a file backend under `dir`/state, passphrase
 * secrets. Returns the project directory and the environment to run the CLI in.
 */
export function pulumiProject(o: { dir: string; name: string; program: string; pulumiBin: string; providerBin: string; root: string }): {
  project: string;
  env: NodeJS.ProcessEnv;
} {
  const project = path.join(o.dir, "project");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "Pulumi.yaml"), `name: ${o.name}\nruntime: nodejs\nmain: index.js\n`);
  fs.writeFileSync(path.join(project, "package.json"), `{"name":"${o.name}","private":true}\n`);
  fs.writeFileSync(path.join(project, "index.js"), o.program);
  fs.symlinkSync(path.join(o.root, "node_modules"), path.join(project, "node_modules"));
  fs.mkdirSync(path.join(o.dir, "state"));
  const env = {
    ...process.env,
    PATH: `${o.pulumiBin}:${path.join(o.root, "node_modules/.bin")}:${process.env.PATH}`,
    PULUMI_BACKEND_URL: `file://${path.join(o.dir, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: `${o.name}-passphrase`,
    PULUMI_HOME: path.join(o.dir, "home"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
    K3S_E2E_BIN: o.providerBin,
    NODE_PATH: path.join(o.root, "node_modules"),
  };
  return { project, env };
}

/** A cluster token like RandomPassword's (alphanumeric), never seen before: tests scan for it. */
export function testToken(suffix: string): string {
  return (
    crypto
      .randomBytes(40)
      .toString("base64")
      .replace(/[^A-Za-z0-9]/g, "")
      .slice(0, 44) + suffix
  );
}

/** Run the Pulumi CLI in `project` (non-interactive); a failure carries the output's last lines. */
export async function runPulumi(
  o: { pulumiBin: string; project: string; env: NodeJS.ProcessEnv },
  args: string[],
  input?: string,
): Promise<{ stdout: string; stderr: string }> {
  const p = promisify(execFile)(path.join(o.pulumiBin, "pulumi"), [...args, "--non-interactive", "--cwd", o.project], { env: o.env, maxBuffer: 64 << 20 });
  if (input !== undefined) p.child.stdin!.end(input);
  try {
    return await p;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`pulumi ${args[0]} failed: ${err.message}\n${(err.stdout ?? "").split("\n").slice(-60).join("\n")}\n${err.stderr ?? ""}`, { cause: e });
  }
}

/** `pulumi stack init` plus the engine suites' config: the spec file, and the token and SSH key as secrets. */
export async function initStack(
  o: { pulumiBin: string; project: string; env: NodeJS.ProcessEnv },
  stack: string,
  config: { specFile: string; token: string; sshKey: string },
): Promise<void> {
  await runPulumi(o, ["stack", "init", stack]);
  await runPulumi(o, ["config", "set", "specFile", config.specFile]);
  await runPulumi(o, ["config", "set", "--secret", "token"], config.token);
  await runPulumi(o, ["config", "set", "--secret", "sshKey"], config.sshKey);
}
