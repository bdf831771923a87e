/**
 * lib/swupdate/run: a process's forked children must not hold its result back (swupdate forks several;
 * one that outlived its parent kept the pipes open and hung a clean-room CI test past its timeout).
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../lib/swupdate/run";

test("a finished process resolves even while a forked child still holds its stdout", async () => {
  const t0 = Date.now();
  const r = await run(["sh", "-c", "sleep 30 & echo done; exit 3"]);
  const took = Date.now() - t0;
  expect(r.code).toBe(3);
  expect(r.stdout.toString()).toBe("done\n");
  expect(took).toBeLessThan(10_000);
});

test("a timeout kills the whole process group, children included, and rejects", async () => {
  const t0 = Date.now();
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "run-test-"));
  const pidFile = path.join(dir, "child.pid");
  await expect(run(["sh", "-c", 'sleep 60 & echo $! > "$1"; wait', "sh", pidFile], { timeoutMs: 500 })).rejects.toThrow(
    /sh did not finish within 500 ms and was killed/,
  );
  expect(Date.now() - t0).toBeLessThan(10_000);
  const child = Number((await fs.promises.readFile(pidFile, "utf8")).trim());
  // the background sleep was in the killed group: it is gone (or a zombie being reaped by init)
  await new Promise((r) => setTimeout(r, 200));
  let alive: boolean;
  try {
    const stat = await fs.promises.readFile(`/proc/${child}/stat`, "utf8");
    alive = !/\) Z /.test(stat);
  } catch {
    alive = false;
  }
  expect(alive).toBe(false);
  await fs.promises.rm(dir, { recursive: true, force: true });
});
