/**
 * The upload algorithm shared by every Host implementation: skip, resume, verify, atomic rename.
 *
 * Given a target that can hash, size, write and rename remote files, `uploadFile`:
 * 1. skips (sends nothing) when the remote file already has the wanted sha256;
 * 2. resumes `<remote>.partial` when it is no longer than the local file and its sha256 equals the
 *    sha256 of the local file's prefix of the same length; otherwise starts it over;
 * 3. writes the rest, checks the sha256 of the whole temp file (hashed while it is written when the
 *    target can, else read back), then chmods and renames it over the final path, so readers see the
 *    old file or the complete new one, never a torn one.
 * A wrong hash after the transfer deletes the temp file and throws (the next call starts over).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import { normalizeSha256 } from "./syntax";
import { HostError, UploadOptions, UploadResult } from "./host";

export interface UploadTarget {
  readonly label: string;
  /** sha256 (lowercase hex) of a remote regular file, undefined when absent. */
  sha256(path: string): Promise<string | undefined>;
  /** Size of a remote regular file, undefined when absent. */
  size(path: string): Promise<number | undefined>;
  /** Create the parent directory of `path`. */
  mkdirParent(path: string): Promise<void>;
  /**
   * Write bytes [offset, total) of the local file at the same offsets of the remote `path`
   * (offset 0: create or truncate). Calls `progress(delta)` as bytes are acknowledged.
   */
  writeFrom(
    localPath: string,
    path: string,
    offset: number,
    total: number,
    progress: (delta: number) => void,
    stallTimeoutMs: number,
  ): Promise<void | { streamSha256?: string }>;
  /** chmod (when mode given) then rename `from` over `to`. */
  commit(from: string, to: string, mode?: number): Promise<void>;
  chmod(path: string, mode: number): Promise<void>;
  remove(path: string): Promise<void>;
}

/** sha256 hex of a local file, or of its first `length` bytes. */
export async function hashLocalFile(path: string, length?: number): Promise<string> {
  const h = crypto.createHash("sha256");
  if (length === 0) return h.digest("hex");
  const stream = fs.createReadStream(path, { highWaterMark: 1 << 20, ...(length !== undefined ? { start: 0, end: length - 1 } : {}) });
  for await (const chunk of stream) h.update(chunk as Buffer);
  return h.digest("hex");
}

export function partialPathOf(remotePath: string): string {
  return remotePath + ".partial";
}

export async function uploadFile(t: UploadTarget, localPath: string, remotePath: string, opts: UploadOptions = {}, sent = { bytes: 0 }): Promise<UploadResult> {
  const t0 = Date.now();
  const step = (what: string) => {
    if (process.env.ISAR_K3S_DEBUG_UPLOAD) process.stderr.write(`upload ${remotePath}: ${what} at +${Date.now() - t0} ms\n`);
  };
  if (!remotePath.startsWith("/")) throw new Error(`upload to ${t.label}: remote path ${JSON.stringify(remotePath)} must be absolute`);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(localPath);
  } catch (e) {
    throw new Error(`upload to ${t.label}: cannot read local file ${localPath}: ${(e as Error).message}`, { cause: e });
  }
  if (!st.isFile()) throw new Error(`upload to ${t.label}: ${localPath} is not a regular file`);
  const total = st.size;
  let want: string;
  if (opts.sha256 !== undefined) {
    const n = normalizeSha256(opts.sha256);
    if (!n) throw new Error(`upload of ${localPath}: sha256 ${JSON.stringify(opts.sha256)} is neither 64 hex digits nor sha256-<base64>`);
    want = n;
  } else {
    want = await hashLocalFile(localPath);
  }

  step("local hash ready");
  const have = await t.sha256(remotePath);
  step("remote file checked");
  if (have === want) {
    if (opts.mode !== undefined) await t.chmod(remotePath, opts.mode);
    opts.onProgress?.(total, total);
    return { skipped: true, bytes: sent.bytes, resumedFrom: 0 };
  }

  const partial = partialPathOf(remotePath);
  await t.mkdirParent(remotePath);
  let offset = 0;
  const psize = await t.size(partial);
  if (psize !== undefined && psize > 0 && psize <= total) {
    const [remotePrefix, localPrefix] = await Promise.all([t.sha256(partial), hashLocalFile(localPath, psize)]);
    if (remotePrefix === localPrefix) offset = psize;
  }
  step(`partial checked, resuming at ${offset}`);
  let done = offset;
  opts.onProgress?.(done, total);
  const written = await t.writeFrom(
    localPath,
    partial,
    offset,
    total,
    (delta) => {
      done += delta;
      sent.bytes += delta;
      opts.onProgress?.(done, total);
    },
    opts.stallTimeoutMs ?? 60_000,
  );

  step("written");
  // A target that hashed the bytes as it wrote the whole file (offset 0) saves reading it back.
  const got = (offset === 0 && written && written.streamSha256) || (await t.sha256(partial));
  step("verified");
  if (got !== want) {
    await t.remove(partial).catch(() => undefined);
    throw new HostError(
      `upload of ${localPath} to ${t.label}:${remotePath}: the uploaded file has sha256 ${got ?? "(missing)"} but ${want} was expected` +
        (opts.sha256 !== undefined
          ? " (check that the given sha256 pin matches the local file)"
          : " (the local file changed during the upload, or the remote disk is failing): run again"),
      t.label,
    );
  }
  await t.commit(partial, remotePath, opts.mode);
  return { skipped: false, bytes: sent.bytes, resumedFrom: offset };
}
