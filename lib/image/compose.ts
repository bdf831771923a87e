/**
 * Per-node image composition: runs `nix build` on nix/node.nix for one node and describes the result.
 *
 * Contract:
 * - `composeNodeImage` writes the node's input (identity, artifact store paths + sha256, rendered files)
 *   as JSON under the cache dir, builds it with `nix build --json --no-link` (argv, no shell), and
 *   returns the output store path, the image id and every output file with its size and sha256.
 *   Same request (and expressions) → same store path; a Nix cache hit builds nothing.
 * - No secret ever reaches Nix: the input holds no token (a k3s config with `token`/`agent-token` is
 *   refused, and `forbiddenValues` — e.g. the cluster token, compared in memory only — are checked
 *   against every file). The values are never printed.
 * - File hashes come from the output's SHA256SUMS (written by the builder, so large images are hashed
 *   once at build time, not on every run); files up to 1 MiB are re-hashed here and every output file
 *   must be listed. A store path is immutable, so this is enough to detect a tampered/partial output.
 * - A failed build throws `ImageBuildError` with the derivation path and the last 40 lines of the
 *   build log (`nix log`, falling back to nix's stderr).
 * - `nodeImageDigest` / `expressionDigest` are pure summaries used by the NodeImage provider's diff.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { LocalHost } from "../transport/local";
import { tailLines } from "../transport/host";
import { Arch, Hardware, Role } from "../model/types";

/** A file for the image; compatible with lib/render's NodeFile. */
export interface ImageFile {
  /** Absolute path inside the root file system. */
  path: string;
  /** Text content. Ends up in the world-readable Nix store: never a secret. */
  content: string;
  /** Permission bits, e.g. 0o600. */
  mode: number;
  /** Owner: a number, or a name looked up in the image's /etc/passwd (/etc/group for gid). */
  uid: number | string;
  gid: number | string;
}

/** A directory to create (or whose mode/owner to set) in the image. */
export interface ImageDir {
  path: string;
  directory: true;
  mode: number;
  uid: number | string;
  gid: number | string;
}

export type ImageEntry = ImageFile | ImageDir;

/** An artifact already in the Nix store (lib/artifacts adds them with `nix-store --add-fixed sha256`). */
export interface ArtifactRef {
  storePath: string;
  /** Lowercase hex sha256 of the file. */
  sha256: string;
}

export interface NodeArtifacts {
  rootfs: ArtifactRef;
  kernel: ArtifactRef;
  initramfs?: ArtifactRef;
  dtbs?: ArtifactRef[];
  /** A .wic (optionally .xz/.zst/.gz): the output then holds disk.img with the node files injected. */
  wic?: ArtifactRef;
}

export interface NodeImageRequest {
  name: string;
  hardware: Hardware;
  arch: Arch;
  role: Role;
  artifacts: NodeArtifacts;
  files: ImageEntry[];
  /** Root partition number inside the .wic; default: the only ext2/3/4 partition holding /etc. */
  wicRootPartition?: number;
  /** Free space added to rootfs.ext4 over its content, percent. Default 30. */
  headroomPercent?: number;
}

/** Which package set the Nix expressions get. */
export type PkgsSource = "host" | { nixpkgs?: string };

export interface ComposeOptions {
  /** Directory holding nix/node.nix. Default: found upwards from this file. */
  projectDir?: string;
  /** Where input JSON files (and GC roots) go. Default <projectDir>/.cache/images. */
  cacheDir?: string;
  /**
   * "host": the test-only nix/testing/host-pkgs.nix (host tools, sandbox off).
   * { nixpkgs: path }: that nixpkgs source (see nix/README.md: `nix eval --raw .#lib.nixpkgsPath`);
   * { } : <nixpkgs> from NIX_PATH. Default { }.
   */
  pkgs?: PkgsSource;
  /** Pass `--option substituters ''` (no binary cache). Default true. */
  offline?: boolean;
  /**
   * Run the builder as root (`--option build-users-group ''`; only when nix itself runs as root,
   * single-user) instead of Nix's build user. The output is the same either way (as the build user the
   * builder unpacks under fakeroot); tests use it to prove that. Default false.
   */
  buildAsRoot?: boolean;
  /** The nix executable. Default "nix". */
  nix?: string;
  /** Extra environment for nix (not for secrets). */
  env?: Record<string, string>;
  /** Kill the build after this many ms. Default 30 minutes. */
  timeoutMs?: number;
  /** Register a GC root <cacheDir>/gcroots/<name> so `nix-collect-garbage` keeps the image. Default false. */
  gcRoot?: boolean;
  /** Values that must not occur in any file (e.g. the cluster token). Compared in memory, never printed. */
  forbiddenValues?: string[];
}

export interface OutputFile {
  /** Path relative to the store path, e.g. "rootfs.ext4", "boot/Image". */
  path: string;
  size: number;
  sha256: string;
}

export interface ComposeResult {
  storePath: string;
  drvPath: string;
  imageId: string;
  files: OutputFile[];
  /** The JSON input given to nix/node.nix. */
  inputFile: string;
}

export class ImageInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageInputError";
  }
}

export class ImageBuildError extends Error {
  constructor(
    message: string,
    readonly drvPath: string | undefined,
    readonly logTail: string,
  ) {
    super(message);
    this.name = "ImageBuildError";
  }
}

const STORE_PATH_RE = /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-([A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]*)$/;
/** Safe path characters, plus systemd's \xNN escapes in unit names ("var-lib-data\x2d1.mount"). */
const FILE_PATH_RE = /^(\/([A-Za-z0-9._@+,=:-]|\\x[0-9a-f]{2})+)+$/;
const OWNER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
const SMALL_FILE = 1 << 20;

/** The directory holding nix/node.nix, searched upwards from `start` (source tree or compiled bin/). */
export function findProjectDir(start: string = __dirname): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, "nix", "node.nix"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new ImageInputError(`no nix/node.nix found above ${start}; pass projectDir`);
    dir = up;
  }
}

/** sha256 over every file under <projectDir>/nix (path + content, sorted): changes when an expression does. */
export function expressionDigest(projectDir: string = findProjectDir()): string {
  const root = path.join(projectDir, "nix");
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.(nix|sh|awk|py|conf)$/.test(e.name)) files.push(p);
    }
  };
  walk(root);
  files.sort();
  const h = createHash("sha256");
  for (const f of files) {
    const data = fs.readFileSync(f);
    h.update(`${path.relative(root, f)}\0${data.length}\0`);
    h.update(data);
  }
  return h.digest("hex");
}

function pkgsKey(p: PkgsSource | undefined): string {
  if (p === "host") return "host";
  return `nixpkgs:${p?.nixpkgs ?? "<nixpkgs>"}`;
}

/** Canonical JSON (sorted keys) so equal requests give equal digests. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v);
}

/**
 * sha256 over everything that decides a node's image: the request (files sorted by path), the
 * expression digest and the package set. Pure: no Nix call, safe in a provider's diff.
 */
export function nodeImageDigest(req: NodeImageRequest, exprDigest: string, pkgs?: PkgsSource): string {
  const files = [...req.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return createHash("sha256")
    .update(canonical({ ...req, files, exprDigest, pkgs: pkgsKey(pkgs) }))
    .digest("hex");
}

function isDir(e: ImageEntry): e is ImageDir {
  return (e as ImageDir).directory === true;
}

function checkOwner(v: unknown, what: string, p: string): void {
  const ok = (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 65536) || (typeof v === "string" && OWNER_RE.test(v));
  if (!ok) throw new ImageInputError(`image file ${p}: ${what} must be 0..65535 or a user/group name, got ${JSON.stringify(v)}`);
}

/**
 * Validate a request; returns a list of problems (empty = fine). Problems name the node and the input.
 * Secret values are never included in messages.
 */
export function validateRequest(req: NodeImageRequest, forbiddenValues: string[] = []): string[] {
  const problems: string[] = [];
  const where = `node ${req.name}`;
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(req.name)) problems.push(`${where}: name must be an RFC 1123 label`);
  const arts: [string, ArtifactRef | undefined][] = [
    ["rootfs", req.artifacts.rootfs],
    ["kernel", req.artifacts.kernel],
    ["initramfs", req.artifacts.initramfs],
    ["wic", req.artifacts.wic],
    ...(req.artifacts.dtbs ?? []).map((d, i) => [`dtbs[${i}]`, d] as [string, ArtifactRef]),
  ];
  for (const [k, a] of arts) {
    if (a === undefined) {
      if (k === "rootfs" || k === "kernel") problems.push(`${where}: artifact ${k} is required`);
      continue;
    }
    if (!STORE_PATH_RE.test(a.storePath)) problems.push(`${where}: artifact ${k} store path ${JSON.stringify(a.storePath)} is not a /nix/store path`);
    if (!/^[0-9a-f]{64}$/.test(a.sha256)) problems.push(`${where}: artifact ${k} sha256 must be 64 lowercase hex digits`);
  }
  const seen = new Set<string>();
  for (const f of req.files) {
    if (!FILE_PATH_RE.test(f.path) || /(^|\/)\.\.?(\/|$)/.test(f.path)) {
      problems.push(
        `${where}: file path ${JSON.stringify(f.path)} must be absolute, use only A-Z a-z 0-9 . _ @ + , = : - / and systemd's \\xNN escapes, no . or .. components`,
      );
      continue;
    }
    if (seen.has(f.path)) problems.push(`${where}: file ${f.path} is given twice`);
    seen.add(f.path);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) problems.push(`${where}: file ${f.path}: mode must be 0..0o7777`);
    try {
      checkOwner(f.uid, "uid", f.path);
      checkOwner(f.gid, "gid", f.path);
    } catch (e) {
      problems.push(`${where}: ${(e as Error).message}`);
    }
    if (isDir(f)) continue;
    if (typeof f.content !== "string") {
      problems.push(`${where}: file ${f.path} needs string content`);
      continue;
    }
    if (f.content.includes("\0")) problems.push(`${where}: file ${f.path} contains a NUL byte (text files only)`);
    for (const v of forbiddenValues) {
      if (v.length > 0 && f.content.includes(v)) problems.push(`${where}: file ${f.path} contains a secret value; secrets must not be baked into images`);
    }
    if (f.path === "/etc/rancher/k3s/config.yaml" || f.path.startsWith("/etc/rancher/k3s/config.yaml.d/")) {
      let doc: unknown;
      try {
        doc = parseYaml(f.content);
      } catch (e) {
        problems.push(`${where}: ${f.path} is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
      }
      if (doc && typeof doc === "object") {
        for (const k of ["token", "agent-token"]) {
          if (k in (doc as Record<string, unknown>)) {
            problems.push(`${where}: ${f.path} sets "${k}"; the cluster token is delivered at join time (use token-file), never baked into an image`);
          }
        }
      }
    }
  }
  return problems;
}

/**
 * sshd reads ~/.ssh/authorized_keys as the user: for /home/<user>/.ssh/authorized_keys given as owned by
 * root, own the file by <user> (by name, resolved in the image's /etc/passwd) and add the .ssh directory
 * 0700 owned by <user>; for /root/.ssh/authorized_keys add /root/.ssh 0700 root. A directory entry
 * given by the caller is kept as given.
 */
export function withSshOwnership(files: ImageEntry[]): ImageEntry[] {
  const out = files.map((f) => ({ ...f }));
  const paths = new Set(out.map((f) => f.path));
  for (const f of [...out]) {
    if (isDir(f)) continue;
    const home = /^\/home\/([a-z_][a-z0-9_-]{0,31})\/\.ssh\/authorized_keys$/.exec(f.path);
    const root = f.path === "/root/.ssh/authorized_keys";
    if (!home && !root) continue;
    if (home) {
      if (f.uid === 0) f.uid = home[1];
      if (f.gid === 0) f.gid = home[1];
    }
    const dir = f.path.slice(0, -"/authorized_keys".length);
    if (!paths.has(dir)) {
      out.push({ path: dir, directory: true, mode: 0o700, uid: f.uid, gid: f.gid });
      paths.add(dir);
    }
  }
  return out;
}

function artifactJson(a: ArtifactRef | undefined): unknown {
  if (!a) return null;
  const m = STORE_PATH_RE.exec(a.storePath);
  return { name: m ? m[1] : a.storePath, sha256: a.sha256, storePath: a.storePath };
}

/** The JSON nix/node.nix reads. */
export function nixInput(req: NodeImageRequest): unknown {
  const files: Record<string, unknown> = {};
  for (const f of withSshOwnership(req.files)) {
    const mode = f.mode.toString(8).padStart(4, "0");
    files[f.path] = isDir(f) ? { directory: true, mode, uid: f.uid, gid: f.gid } : { content: f.content, mode, uid: f.uid, gid: f.gid };
  }
  return {
    name: req.name,
    arch: req.arch,
    role: req.role,
    hardware: req.hardware,
    wicRootPartition: req.wicRootPartition ?? null,
    headroomPercent: req.headroomPercent ?? 30,
    artifacts: {
      rootfs: artifactJson(req.artifacts.rootfs),
      kernel: artifactJson(req.artifacts.kernel),
      initramfs: artifactJson(req.artifacts.initramfs),
      dtbs: (req.artifacts.dtbs ?? []).map(artifactJson),
      wic: artifactJson(req.artifacts.wic),
    },
    files,
  };
}

/** argv of the `nix build` for an input file. */
export function nixBuildArgv(inputFile: string, opts: ComposeOptions & { projectDir: string }): string[] {
  const argv = [opts.nix ?? "nix", "build", "--extra-experimental-features", "nix-command", "--json", "--no-link", "--print-build-logs"];
  if (opts.offline ?? true) argv.push("--option", "substituters", "");
  if (opts.pkgs === "host") argv.push("--option", "sandbox", "false");
  if (opts.buildAsRoot) argv.push("--option", "build-users-group", "");
  argv.push("-f", path.join(opts.projectDir, "nix", "node.nix"), "--argstr", "inputFile", inputFile);
  if (opts.pkgs === "host") argv.push("--argstr", "pkgsSource", "host");
  else if (opts.pkgs?.nixpkgs) argv.push("--argstr", "nixpkgs", opts.pkgs.nixpkgs);
  return argv;
}

function writeAtomic(file: string, data: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o644 });
  fs.renameSync(tmp, file);
}

function sha256File(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Every regular file of a store path with size and sha256 (from SHA256SUMS, small files re-hashed). */
export function listOutputFiles(storePath: string): OutputFile[] {
  const sumsFile = path.join(storePath, "SHA256SUMS");
  if (!fs.existsSync(sumsFile)) throw new ImageBuildError(`${storePath} has no SHA256SUMS: not a node image`, undefined, "");
  const sums = new Map<string, string>();
  for (const line of fs.readFileSync(sumsFile, "utf8").split("\n")) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
    if (m) sums.set(m[2], m[1]);
  }
  const out: OutputFile[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const rel = path.relative(storePath, p);
        const size = fs.statSync(p).size;
        if (rel === "SHA256SUMS") {
          out.push({ path: rel, size, sha256: sha256File(p) });
          continue;
        }
        const listed = sums.get(rel);
        if (!listed) throw new ImageBuildError(`${storePath}: ${rel} is not listed in SHA256SUMS`, undefined, "");
        if (size <= SMALL_FILE && sha256File(p) !== listed) {
          throw new ImageBuildError(
            `${storePath}: ${rel} does not match its SHA256SUMS entry (corrupt store? run nix-store --verify --check-contents)`,
            undefined,
            "",
          );
        }
        out.push({ path: rel, size, sha256: listed });
      }
    }
  };
  walk(storePath);
  for (const k of sums.keys()) {
    if (!out.some((f) => f.path === k)) throw new ImageBuildError(`${storePath}: ${k} is in SHA256SUMS but missing`, undefined, "");
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

async function buildLogTail(drvPath: string, opts: ComposeOptions): Promise<string | undefined> {
  try {
    const argv = [opts.nix ?? "nix", "--extra-experimental-features", "nix-command", "log"];
    // without this, `nix log` first asks the binary caches (minutes of retries when offline)
    if (opts.offline ?? true) argv.push("--option", "substituters", "");
    argv.push(drvPath);
    const res = await new LocalHost().run(argv, {
      env: opts.env,
      timeoutMs: 60_000,
    });
    if (res.code === 0 && res.stdout.length > 0) return tailLines(res.stdout, 40);
  } catch {
    /* fall back to stderr */
  }
  return undefined;
}

/** Build one node's image (or find it in the store) and describe it. */
export async function composeNodeImage(req: NodeImageRequest, opts: ComposeOptions = {}): Promise<ComposeResult> {
  const problems = validateRequest(req, opts.forbiddenValues);
  if (problems.length > 0) throw new ImageInputError(`invalid image input:\n  ${problems.join("\n  ")}`);
  const projectDir = opts.projectDir ?? findProjectDir();
  const cacheDir = opts.cacheDir ?? path.join(projectDir, ".cache", "images");
  const input = JSON.stringify(nixInput(req), null, 1) + "\n";
  const tag = createHash("sha256").update(input).digest("hex").slice(0, 16);
  const inputFile = path.join(cacheDir, "inputs", `${req.name}-${tag}.json`);
  if (!fs.existsSync(inputFile)) writeAtomic(inputFile, input);

  const argv = nixBuildArgv(inputFile, { ...opts, projectDir });
  const res = await new LocalHost().run(argv, { env: opts.env, timeoutMs: opts.timeoutMs ?? 30 * 60_000 });
  const stderr = res.stderr.toString("utf8");
  if (res.code !== 0) {
    const drv = /builder for '([^']+\.drv)' failed/.exec(stderr)?.[1] ?? /(\/nix\/store\/[0-9a-z]{32}-[^'\s]+\.drv)/.exec(stderr)?.[1];
    const log = (drv && (await buildLogTail(drv, opts))) ?? tailLines(stderr, 40);
    const how = res.signal ? `was killed (${res.signal}; timeout ${opts.timeoutMs ?? 30 * 60_000} ms?)` : `exited ${res.code}`;
    throw new ImageBuildError(
      `nix build of node ${req.name}'s image ${how}${drv ? ` (derivation ${drv})` : ""}; input ${inputFile}\n` +
        `command: ${argv.join(" ")}\n--- last lines of the build log ---\n${log}`,
      drv,
      log,
    );
  }
  let parsed: { drvPath?: string; outputs?: { out?: string } }[];
  try {
    parsed = JSON.parse(res.stdout.toString("utf8"));
  } catch {
    throw new ImageBuildError(`nix build printed no JSON for node ${req.name}: ${tailLines(res.stdout, 5)}`, undefined, tailLines(stderr, 40));
  }
  const storePath = parsed[0]?.outputs?.out;
  const drvPath = parsed[0]?.drvPath ?? "";
  if (!storePath) throw new ImageBuildError(`nix build gave no output path for node ${req.name}`, drvPath, tailLines(stderr, 40));

  if (opts.gcRoot) {
    const link = path.join(cacheDir, "gcroots", req.name);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    const r = await new LocalHost().run(["nix-store", "--realise", storePath, "--add-root", link, "--indirect"], { env: opts.env, timeoutMs: 60_000 });
    if (r.code !== 0)
      throw new ImageBuildError(`could not add GC root ${link} for ${storePath}:\n${tailLines(r.stderr, 40)}`, drvPath, tailLines(r.stderr, 40));
  }

  const files = listOutputFiles(storePath);
  const meta = JSON.parse(fs.readFileSync(path.join(storePath, "metadata.json"), "utf8")) as { imageId?: string };
  if (!meta.imageId) throw new ImageBuildError(`${storePath}/metadata.json has no imageId`, drvPath, "");
  return { storePath, drvPath, imageId: meta.imageId, files, inputFile };
}

/** Remove the GC root of a node's image (the store path itself goes at the next garbage collection). */
export function removeGcRoot(name: string, opts: { projectDir?: string; cacheDir?: string } = {}): void {
  const cacheDir = opts.cacheDir ?? path.join(opts.projectDir ?? findProjectDir(), ".cache", "images");
  fs.rmSync(path.join(cacheDir, "gcroots", name), { force: true });
}
