/**
 * The dynamic provider process must not outlive the Pulumi engine that started it.
 *
 * Pulumi runs a dynamic provider as a plugin process (`pulumi-resource-pulumi-nodejs`, which execs node
 * on @pulumi/pulumi/cmd/dynamic-provider) whose parent is the engine. When the engine is killed
 * (`kill -9` of the CLI), nothing tells the plugin: its gRPC server keeps running and an operation in
 * flight (a drain, a flash, a join) goes on acting on nodes with nobody to record the outcome.
 *
 * `watchEngine()` (called by the providers at the start of every operation that acts on nodes) checks
 * every `everyMs` whether the process's parent is still the one it started with; when the parent is gone
 * (the process was re-parented), it sends SIGTERM to its own child processes (local commands; SSH
 * sessions are in-process and close with it), writes one line to stderr and exits with code 70. The
 * remote side of an SSH command gets SIGHUP when the session closes, as with any dropped SSH session.
 * Only active inside the dynamic provider process (not under jest or in the program itself).
 */
import * as fs from "fs";

let watching: NodeJS.Timeout | undefined;

/** Pids of this process's direct children (Linux /proc). */
export function childPids(pid = process.pid): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/** True inside Pulumi's dynamic provider plugin process. */
export function isDynamicProviderProcess(argv = process.argv): boolean {
  return argv.slice(1, 2).some((a) => /[\\/]cmd[\\/]dynamic-provider([\\/]index\.js)?$/.test(a));
}

/** Start watching the parent (idempotent; see the file comment). */
export function watchEngine(opts: { everyMs?: number; force?: boolean; onGone?: () => void } = {}): void {
  if (watching || !(opts.force || isDynamicProviderProcess())) return;
  const parent = process.ppid;
  watching = setInterval(() => {
    if (process.ppid === parent) return;
    process.stderr.write(`isar-k3s provider: the Pulumi engine (pid ${parent}) is gone; stopping this provider and its child processes\n`);
    for (const c of childPids()) {
      try {
        process.kill(c, "SIGTERM");
      } catch {
        // gone already
      }
    }
    if (opts.onGone) opts.onGone();
    else process.exit(70);
  }, opts.everyMs ?? 500);
  watching.unref();
}

/** Stop watching (tests). */
export function unwatchEngine(): void {
  if (watching) clearInterval(watching);
  watching = undefined;
}
