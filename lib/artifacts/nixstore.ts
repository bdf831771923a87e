/**
 * The Nix store side of artifact import: add a file as a flat fixed-output path (sha256), compute the
 * store path a pinned file will get without touching the store, and check whether a store path is still
 * there (garbage collection removes unreferenced paths).
 *
 * Guarantees:
 * - Commands run as argv arrays (execFile, no shell). `nix-store --add-fixed sha256 FILE` names the store
 *   path after FILE's base name, so callers control the name through the file name.
 * - `fixedOutputStorePath` reproduces Nix's own computation (makeFixedOutputPath for flat sha256);
 *   `addFixed` checks the path nix-store returned against it, so a wrong store dir or a Nix that hashes
 *   differently is caught instead of silently producing a different path.
 * - Errors carry the last lines of nix-store's stderr and say what to do (install nix-bin, start the
 *   daemon or unset NIX_REMOTE, run as a user who may write the store).
 * - Works with Debian's nix-bin 2.8 single-user as root (no daemon, NIX_REMOTE unset) and with a daemon
 *   when NIX_REMOTE=daemon.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { toNixBase32 } from "./hash";

export const DEFAULT_STORE_DIR = "/nix/store";

export interface NixStoreOptions {
  /** The nix-store executable. Default "nix-store" from PATH. */
  nixStore?: string;
  /** Extra environment (merged over process.env), e.g. { NIX_REMOTE: "daemon" }. */
  env?: NodeJS.ProcessEnv;
  /** Store directory, for path computations. Default $NIX_STORE_DIR or /nix/store. */
  storeDir?: string;
}

export class NixStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NixStoreError";
  }
}

/** Store path names Nix accepts: [A-Za-z0-9+-._?=], not starting with '.', at most 211 characters. */
export function isValidStoreName(name: string): boolean {
  return /^[A-Za-z0-9+\-_?=][A-Za-z0-9+\-._?=]*$/.test(name) && name.length <= 211;
}

/** Nix's compressHash: XOR-fold a digest to `size` bytes. */
function compressHash(digest: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < digest.length; i++) out[i % size] ^= digest[i];
  return out;
}

function sha256(s: string): Buffer {
  return crypto.createHash("sha256").update(s).digest();
}

/**
 * The store path `nix-store --add-fixed sha256 <dir>/<name>` produces for a file with sha256 `hex`
 * (flat ingestion, not recursive/NAR).
 */
export function fixedOutputStorePath(hex: string, name: string, storeDir: string = defaultStoreDir()): string {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`fixedOutputStorePath: ${JSON.stringify(hex)} is not a lowercase hex sha256`);
  if (!isValidStoreName(name)) throw new Error(`fixedOutputStorePath: ${JSON.stringify(name)} is not a valid Nix store name`);
  const inner = sha256(`fixed:out:sha256:${hex}:`).toString("hex");
  const fingerprint = `output:out:sha256:${inner}:${storeDir}:${name}`;
  return `${storeDir}/${toNixBase32(compressHash(sha256(fingerprint), 20))}-${name}`;
}

export function defaultStoreDir(): string {
  return process.env.NIX_STORE_DIR || DEFAULT_STORE_DIR;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === "ENOENT") {
        reject(new NixStoreError(`${bin} not found: install Nix (Debian: apt-get install nix-bin) or put nix-store on PATH`));
        return;
      }
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function tail(s: string, n = 40): string {
  const lines = s.trimEnd().split("\n");
  return lines.slice(-n).join("\n");
}

function hintFor(stderr: string): string {
  if (/cannot connect to (socket|daemon)|daemon-socket|Connection refused/i.test(stderr)) {
    return "the Nix daemon is not reachable: start it (systemctl start nix-daemon) or, as root without a daemon, unset NIX_REMOTE";
  }
  if (/Permission denied|Operation not permitted|read-only file system/i.test(stderr)) {
    return "this user may not write the Nix store: run as root (single-user install) or set NIX_REMOTE=daemon with a running nix-daemon";
  }
  if (/No space left/i.test(stderr)) return "the file system holding /nix/store is full: free space (nix-collect-garbage) and retry";
  return "see nix-store's message above";
}

/**
 * Add `file` to the store as a flat sha256 fixed-output path; returns the store path. If `expectedHex`
 * is given, the returned path must equal the one computed from it (else NixStoreError).
 */
export async function addFixed(file: string, expectedHex?: string, opts: NixStoreOptions = {}): Promise<string> {
  const bin = opts.nixStore ?? "nix-store";
  const name = path.basename(file);
  if (!isValidStoreName(name)) {
    throw new NixStoreError(
      `cannot add ${file} to the Nix store: its name ${JSON.stringify(name)} has characters Nix refuses in store names (allowed: letters, digits, + - . _ ? =, not starting with '.'); rename the file`,
    );
  }
  const r = await run(bin, ["--add-fixed", "sha256", file], opts.env);
  if (r.code !== 0) {
    throw new NixStoreError(`nix-store --add-fixed sha256 ${file} failed (exit ${r.code}):\n${tail(r.stderr)}\n${hintFor(r.stderr)}`);
  }
  const storePath = r.stdout.trim().split("\n").pop() ?? "";
  if (!storePath.startsWith("/")) {
    throw new NixStoreError(`nix-store --add-fixed sha256 ${file} printed no store path (stdout: ${JSON.stringify(r.stdout.slice(0, 200))})`);
  }
  if (expectedHex !== undefined) {
    const storeDir = opts.storeDir ?? path.dirname(storePath);
    const want = fixedOutputStorePath(expectedHex, name, storeDir);
    if (want !== storePath) {
      throw new NixStoreError(
        `nix-store added ${file} as ${storePath}, but a file with sha256 ${expectedHex} must become ${want}: the file changed while it was being added; rebuild or re-run`,
      );
    }
  }
  return storePath;
}

/**
 * Whether `storePath` is a valid path in the Nix database AND still present on disk (a path deleted by
 * hand stays "valid" in the database; one removed by garbage collection is neither).
 */
export async function isStorePathValid(storePath: string, opts: NixStoreOptions = {}): Promise<boolean> {
  const bin = opts.nixStore ?? "nix-store";
  const r = await run(bin, ["--check-validity", storePath], opts.env);
  if (r.code === 0) {
    try {
      await fs.promises.lstat(storePath);
      return true;
    } catch {
      return false;
    }
  }
  if (/is not valid/.test(r.stderr)) return false;
  throw new NixStoreError(`nix-store --check-validity ${storePath} failed (exit ${r.code}):\n${tail(r.stderr)}\n${hintFor(r.stderr)}`);
}
