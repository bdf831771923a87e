/**
 * LocalHost: the Host interface on this machine. Commands are spawned without a shell (argv as is),
 * each in its own process group so that a timeout kills the whole command tree;
 * uploads are file copies with the same skip / resume / verify / atomic-rename rules as over SSH.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { pipeline } from "stream/promises";
import { Host, HostError, RunOptions, RunResult, TailBuffer, UploadOptions, UploadResult, tailLines } from "./host";
import { hashLocalFile, uploadFile, UploadTarget } from "./upload";

export class LocalHost implements Host {
  readonly label = "localhost";

  run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    if (argv.length === 0) return Promise.reject(new Error("empty command: argv needs at least the program name"));
    return new Promise((resolve, reject) => {
      const child = spawn(argv[0], argv.slice(1), {
        stdio: ["pipe", "pipe", "pipe"],
        detached: true, // own process group, so a timeout kills the command's children too
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
      });
      const out = new TailBuffer(opts.maxStdoutBytes ?? 16 << 20);
      const err = new TailBuffer(64 << 10);
      child.stdout.on("data", (b: Buffer) => out.push(b));
      child.stderr.on("data", (b: Buffer) => err.push(b));
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          timedOut = true;
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            child.kill("SIGKILL");
          }
        }, opts.timeoutMs);
      }
      child.stdin.on("error", () => undefined); // EPIPE when the command does not read its stdin
      if (opts.stdin === undefined) child.stdin.end();
      else if (typeof opts.stdin === "string" || Buffer.isBuffer(opts.stdin)) child.stdin.end(opts.stdin);
      else opts.stdin.pipe(child.stdin);
      child.on("error", (e) => {
        if (timer) clearTimeout(timer);
        reject(new HostError(`localhost: cannot run ${argv[0]}: ${e.message}`, this.label));
      });
      child.on("close", (code, signal) => {
        if (timer) clearTimeout(timer);
        const res: RunResult = {
          code,
          signal: signal ? signal.replace(/^SIG/, "") : null,
          stdout: out.get(),
          stderr: err.get(),
          stdoutTruncated: out.truncated,
        };
        if (timedOut) {
          reject(
            new HostError(
              `localhost: \`${argv.join(" ")}\` timed out after ${opts.timeoutMs} ms and was killed; last output:\n${tailLines(res.stderr)}`,
              this.label,
              res,
            ),
          );
        } else resolve(res);
      });
    });
  }

  private target(): UploadTarget {
    const exists = async (p: string) =>
      fs.promises.stat(p).then(
        (s) => (s.isFile() ? s : undefined),
        () => undefined,
      );
    return {
      label: this.label,
      sha256: async (p) => ((await exists(p)) ? hashLocalFile(p) : undefined),
      size: async (p) => (await exists(p))?.size,
      mkdirParent: async (p) => {
        await fs.promises.mkdir(path.dirname(p), { recursive: true });
      },
      writeFrom: async (local, p, offset, total, progress) => {
        const src = fs.createReadStream(local, { start: offset, end: total - 1, highWaterMark: 1 << 20 });
        const dst = fs.createWriteStream(p, { flags: offset === 0 ? "w" : "r+", start: offset });
        src.on("data", (b) => progress((b as Buffer).length));
        if (total > offset) await pipeline(src, dst);
        else await fs.promises.truncate(p, total);
      },
      commit: async (from, to, mode) => {
        if (mode !== undefined) await fs.promises.chmod(from, mode);
        await fs.promises.rename(from, to);
      },
      chmod: (p, mode) => fs.promises.chmod(p, mode),
      remove: (p) => fs.promises.rm(p, { force: true }),
    };
  }

  upload(localPath: string, remotePath: string, opts?: UploadOptions): Promise<UploadResult> {
    return uploadFile(this.target(), localPath, remotePath, opts);
  }

  readFile(remotePath: string): Promise<Buffer> {
    return fs.promises.readFile(remotePath);
  }

  async sha256(remotePath: string): Promise<string | undefined> {
    const st = await fs.promises.stat(remotePath).catch(() => undefined);
    return st?.isFile() ? hashLocalFile(remotePath) : undefined;
  }

  async close(): Promise<void> {}
}
