/**
 * Run an ISAR build through kas-container and find what it deployed.
 *
 * Guarantees:
 * - The command is an argv (`kas-container --isar build kas/base.yml:kas/machine/<m>.yml:kas/image/<i>.yml:
 *   kas/network/<p>.yml`), run without a shell in the ISAR tree. Its environment takes KAS_WORK_DIR,
 *   KAS_BUILD_DIR, DL_DIR, SSTATE_DIR and KAS_CONTAINER_ENGINE from the build settings only: inherited
 *   values of those variables are dropped, so the config is the single source of truth.
 * - Preflight checks fail in seconds, before an hours-long build: missing overlay files, running as root
 *   without allowRoot (kas-container refuses it), the engine or sudo (kas-container runs
 *   `sudo --preserve-env podman` for ISAR builds) missing from PATH.
 * - The complete output (stdout and stderr) goes to a log file under <buildDir>/isar-k3s-logs/; only the
 *   last 40 lines are kept in memory. A failure throws KasBuildError with the exit code, that tail and the
 *   log's path. The time limit is the settings' timeoutSeconds (no shorter default); on expiry the whole
 *   process group gets SIGTERM (kas-container cleans up its container), then SIGINT, and SIGKILL only as a
 *   last resort after the grace periods.
 * - `findDeployOutputs` names files by ISAR's deploy naming (./isar-names.ts) and never guesses: absent
 *   kinds are reported as absent.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { Arch, IsarBuildSettings } from "../model/types";
import { IsarImageId, KasTarget, deployDir, formatCommand, imageStem, kasBuildArgv, kasConfigList, kernelFile } from "./isar-names";

export const TAIL_LINES = 40;
/** Same default as the stack config parser (isar.timeoutSeconds). */
export const DEFAULT_BUILD_TIMEOUT_SECONDS = 6 * 3600;

export interface KasBuildRequest {
  /** Build settings from the stack config (isar.*). Relative directories resolve against projectDir. */
  settings: IsarBuildSettings;
  target: KasTarget;
  /** Base for relative directories in settings. */
  projectDir: string;
  /** kas-container executable. Default "kas-container" from PATH. */
  kasContainer?: string;
  /** Set KAS_ALLOW_ROOT=yes when running as root. Default false (kas-container then refuses to run as root). */
  allowRoot?: boolean;
  /** Directories put in front of PATH for kas-container (where the engine / sudo live). Default none. */
  searchPath?: string[];
  /** Grace period between SIGTERM, SIGINT and SIGKILL after a timeout, ms. Default 60 000. */
  killGraceMs?: number;
  /** Called with each complete output line (for progress display). Default none. */
  onLine?: (line: string) => void;
}

export interface KasCommand {
  argv: string[];
  /** The variables we set (the rest of the environment is inherited minus the dropped kas variables). */
  kasEnv: Record<string, string>;
  env: NodeJS.ProcessEnv;
  cwd: string;
  workDir: string;
  buildDir: string;
  logDir: string;
  timeoutSeconds: number;
}

export class KasBuildError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly tail: string[],
    readonly logPath: string | undefined,
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = "KasBuildError";
  }
}

/** Variables kas-container reads that must come from the config only. */
const CONTROLLED_VARS = ["KAS_WORK_DIR", "KAS_BUILD_DIR", "DL_DIR", "SSTATE_DIR", "KAS_CONTAINER_ENGINE", "KAS_DOCKER_ENGINE", "KAS_ALLOW_ROOT"];

/** Build the argv, environment and directories of a kas-container build. Pure apart from reading process.env. */
export function kasCommand(req: KasBuildRequest): KasCommand {
  const s = req.settings;
  const cwd = path.resolve(req.projectDir, s.kasDir);
  const workDir = path.resolve(req.projectDir, s.workDir ?? s.kasDir);
  const buildDir = s.buildDir ? path.resolve(req.projectDir, s.buildDir) : path.join(workDir, "build");
  const kasEnv: Record<string, string> = {
    KAS_WORK_DIR: workDir,
    KAS_BUILD_DIR: buildDir,
    KAS_CONTAINER_ENGINE: s.engine,
  };
  if (s.dlDir) kasEnv.DL_DIR = path.resolve(req.projectDir, s.dlDir);
  if (s.sstateDir) kasEnv.SSTATE_DIR = path.resolve(req.projectDir, s.sstateDir);
  if (req.allowRoot) kasEnv.KAS_ALLOW_ROOT = "yes";
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const v of CONTROLLED_VARS) delete env[v];
  Object.assign(env, kasEnv);
  if (req.searchPath && req.searchPath.length > 0) {
    env.PATH = [...req.searchPath.map((p) => path.resolve(req.projectDir, p)), env.PATH ?? "/usr/bin:/bin"].join(path.delimiter);
  }
  const timeoutSeconds = s.timeoutSeconds > 0 ? s.timeoutSeconds : DEFAULT_BUILD_TIMEOUT_SECONDS;
  return {
    argv: kasBuildArgv(req.target, req.kasContainer ?? "kas-container"),
    kasEnv,
    env,
    cwd,
    workDir,
    buildDir,
    logDir: path.join(buildDir, "isar-k3s-logs"),
    timeoutSeconds,
  };
}

function onPath(cmd: string, envPath: string | undefined): string | undefined {
  if (cmd.includes("/")) return fs.existsSync(cmd) ? cmd : undefined;
  for (const dir of (envPath ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Problems that would make kas-container fail at once; empty when the build can start. */
export function preflight(req: KasBuildRequest, cmd: KasCommand = kasCommand(req)): string[] {
  const problems: string[] = [];
  if (!fs.existsSync(cmd.cwd) || !fs.statSync(cmd.cwd).isDirectory()) {
    problems.push(`the ISAR tree ${cmd.cwd} (isar.kasDir) does not exist: clone it there or fix isar.kasDir`);
    return problems;
  }
  for (const f of kasConfigList(req.target).split(":")) {
    if (!fs.existsSync(path.resolve(cmd.cwd, f))) problems.push(`kas overlay ${f} not found in ${cmd.cwd}: add it or fix the machine / image / network name`);
  }
  if (!onPath(cmd.argv[0], cmd.env.PATH)) {
    problems.push(`${cmd.argv[0]} not found on PATH: install kas (Debian: apt-get install kas) or set kasContainer`);
  }
  if (!onPath(req.settings.engine, cmd.env.PATH)) {
    problems.push(`container engine ${req.settings.engine} (isar.engine) not found on PATH: install it or pick the other engine`);
  }
  if (req.settings.engine === "podman" && !onPath("sudo", cmd.env.PATH)) {
    problems.push(
      "kas-container runs `sudo --preserve-env podman run` for ISAR builds (privileged container) and sudo is not on PATH: install sudo or use isar.engine docker",
    );
  }
  if (typeof process.getuid === "function" && process.getuid() === 0 && !req.allowRoot) {
    problems.push("running as root: kas-container refuses this unless KAS_ALLOW_ROOT=yes; set allowRoot: true, or build as a user in the engine's group");
  }
  return problems;
}

/** Keeps the last `n` lines of a byte stream. */
export class LineTail {
  private lines: string[] = [];
  private partial = "";
  constructor(
    private readonly n = TAIL_LINES,
    private readonly onLine?: (line: string) => void,
  ) {}
  push(chunk: string): void {
    const parts = (this.partial + chunk).split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    if (this.partial.length > 64 * 1024) {
      parts.push(this.partial);
      this.partial = "";
    }
    for (const p of parts) {
      const line = p.length > 2000 ? p.slice(0, 2000) + " …" : p;
      this.onLine?.(line);
      this.lines.push(line);
      if (this.lines.length > this.n) this.lines.shift();
    }
  }
  get(): string[] {
    const all = this.partial ? [...this.lines, this.partial] : [...this.lines];
    return all.slice(-this.n);
  }
}

export interface KasBuildResult {
  command: KasCommand;
  logPath: string;
  durationMs: number;
  deployDir: string;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
}

/** Run the build; resolves when kas-container exits 0, else throws KasBuildError. */
export async function runKasBuild(req: KasBuildRequest): Promise<KasBuildResult> {
  const cmd = kasCommand(req);
  const problems = preflight(req, cmd);
  const shown = formatCommand(cmd.argv);
  if (problems.length > 0) {
    throw new KasBuildError(`cannot start ${shown}:\n` + problems.map((p) => `  - ${p}`).join("\n"), null, null, [], undefined, false);
  }
  // kas-container resolves KAS_WORK_DIR / KAS_BUILD_DIR with `readlink -f` under `set -e`: if a parent
  // directory is missing it exits 1 without any message. Create both first.
  await fs.promises.mkdir(cmd.workDir, { recursive: true });
  await fs.promises.mkdir(cmd.logDir, { recursive: true });
  const logPath = path.join(cmd.logDir, `kas-build-${req.target.machine}-${req.target.image}-${timestamp()}.log`);
  const log = fs.createWriteStream(logPath, { mode: 0o644 });
  log.write(
    `# cd ${formatCommand([cmd.cwd])} && ${Object.entries(cmd.kasEnv)
      .map(([k, v]) => `${k}=${formatCommand([v])}`)
      .join(" ")} ${shown}\n`,
  );
  const tail = new LineTail(TAIL_LINES, req.onLine);
  const started = Date.now();
  const grace = req.killGraceMs ?? 60_000;

  const outcome = await new Promise<{ code: number | null; signal: string | null; timedOut: boolean; spawnError?: Error }>((resolve) => {
    const child = spawn(cmd.argv[0], cmd.argv.slice(1), { cwd: cmd.cwd, env: cmd.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    timers.push(
      setTimeout(() => {
        timedOut = true;
        const msg = `\n# isar-k3s: build exceeded ${cmd.timeoutSeconds} s (isar.timeoutSeconds): sending SIGTERM\n`;
        log.write(msg);
        tail.push(msg);
        killGroup("SIGTERM");
        timers.push(setTimeout(() => killGroup("SIGINT"), grace));
        timers.push(setTimeout(() => killGroup("SIGKILL"), 2 * grace));
      }, cmd.timeoutSeconds * 1000),
    );
    const feed = (b: Buffer) => {
      log.write(b);
      tail.push(b.toString("utf8"));
    };
    child.stdout!.on("data", feed);
    child.stderr!.on("data", feed);
    child.on("error", (e) => {
      timers.forEach(clearTimeout);
      resolve({ code: null, signal: null, timedOut, spawnError: e });
    });
    child.on("close", (code, signal) => {
      timers.forEach(clearTimeout);
      resolve({ code, signal, timedOut });
    });
  });
  await new Promise<void>((resolve) => log.end(resolve));

  const durationMs = Date.now() - started;
  if (outcome.spawnError) {
    throw new KasBuildError(`cannot run ${shown}: ${outcome.spawnError.message}`, null, null, tail.get(), logPath, false);
  }
  if (outcome.code === 0 && !outcome.timedOut) {
    return { command: cmd, logPath, durationMs, deployDir: deployDir(cmd.buildDir, req.target.machine) };
  }
  const how = outcome.timedOut
    ? `timed out after ${cmd.timeoutSeconds} s (raise isar.timeoutSeconds if the build is just slow)`
    : outcome.signal
      ? `was killed by ${outcome.signal}`
      : `failed with exit code ${outcome.code}` +
        (outcome.code === 2 ? " (kas: user error or bitbake failure)" : outcome.code === 1 ? " (kas-container or kas internal error)" : "");
  const lines = tail.get();
  throw new KasBuildError(
    `ISAR build ${shown} (in ${cmd.cwd}) ${how}.\n` +
      `Last ${lines.length} lines of the log:\n` +
      lines.map((l) => `  | ${l}`).join("\n") +
      `\nFull log: ${logPath}`,
    outcome.code,
    outcome.signal,
    lines,
    logPath,
    outcome.timedOut,
  );
}

export interface DeployOutputs {
  deployDir: string;
  rootfs?: string;
  kernel?: string;
  initramfs?: string;
  wic?: string;
  /** Every *.dtb in the deploy directory, sorted. */
  dtbs: string[];
  /** Every regular file in the deploy directory, sorted (for messages). */
  files: string[];
}

export interface FindOptions {
  arch: Arch;
  /** Default "tar.gz". */
  rootfsType?: string;
  /** Default "wic". */
  wicType?: string;
}

/** Look up a build's outputs in its deploy directory by ISAR naming. Throws if the directory is missing. */
export async function findDeployOutputs(dir: string, id: IsarImageId, opts: FindOptions): Promise<DeployOutputs> {
  let names: string[];
  try {
    names = (await fs.promises.readdir(dir, { withFileTypes: true }))
      .filter((d) => d.isFile() || d.isSymbolicLink())
      .map((d) => d.name)
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        `ISAR deploy directory ${dir} does not exist: the build produced nothing for MACHINE ${id.machine} (check kas/machine/${id.machine}.yml sets machine: ${id.machine})`,
        { cause: e },
      );
    }
    throw e;
  }
  const stem = imageStem(id);
  const pick = (n: string) => (names.includes(n) ? path.join(dir, n) : undefined);
  return {
    deployDir: dir,
    rootfs: pick(`${stem}.${opts.rootfsType ?? "tar.gz"}`),
    kernel: pick(`${stem}-${kernelFile(opts.arch)}`),
    initramfs: pick(`${stem}-initrd.img`),
    wic: pick(`${stem}.${opts.wicType ?? "wic"}`),
    dtbs: names.filter((n) => n.endsWith(".dtb")).map((n) => path.join(dir, n)),
    files: names.map((n) => path.join(dir, n)),
  };
}
