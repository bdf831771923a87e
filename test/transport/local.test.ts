/** LocalHost: argv without a shell, stdin, timeouts, and the shared upload rules on local files. */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Readable } from "stream";
import { HostError, checkResult } from "../../lib/transport/host";
import { LocalHost } from "../../lib/transport/local";
import { HOSTILE } from "./hostile";

let tmp: string;
const host = new LocalHost();
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "local-host-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("argv reaches the program verbatim (no shell in between)", async () => {
  const r = await host.run([process.execPath, "-e", "process.stdout.write(JSON.stringify(process.argv.slice(1)))", ...HOSTILE]);
  expect(JSON.parse(r.stdout.toString())).toEqual(HOSTILE);
});

test("stdin, exit code, stderr tail, env", async () => {
  expect((await host.run(["cat"], { stdin: Readable.from([Buffer.from("a"), Buffer.from("b")]) })).stdout.toString()).toBe("ab");
  const r = await host.run(["sh", "-c", 'echo "$X" >&2; exit 3'], { env: { X: "from-env" } });
  expect(r.code).toBe(3);
  expect(r.stderr.toString()).toBe("from-env\n");
  expect(() => checkResult(host, ["sh"], r)).toThrow(/exited 3:\nfrom-env/);
});

test("timeout kills and throws HostError with the output tail", async () => {
  const err = await host.run(["sh", "-c", "echo begun >&2; sleep 20"], { timeoutMs: 300 }).catch((e) => e);
  expect(err).toBeInstanceOf(HostError);
  expect(err.message).toMatch(/timed out after 300 ms[\s\S]*begun/);
});

test("a missing program is a HostError naming it", async () => {
  await expect(host.run(["/nonexistent/prog"])).rejects.toThrow(/cannot run \/nonexistent\/prog/);
});

test("upload: copy, skip unchanged, resume a matching partial, mode, sha256", async () => {
  const src = path.join(tmp, "src.bin");
  const data = crypto.randomBytes(5 << 20);
  fs.writeFileSync(src, data);
  const sha = crypto.createHash("sha256").update(data).digest("hex");
  const dst = path.join(tmp, "out/dir/dst.bin");
  const r1 = await host.upload(src, dst, { mode: 0o600 });
  expect(r1).toEqual({ skipped: false, bytes: 5 << 20, resumedFrom: 0 });
  expect(fs.statSync(dst).mode & 0o777).toBe(0o600);
  expect(await host.sha256(dst)).toBe(sha);
  expect((await host.upload(src, dst)).skipped).toBe(true);
  fs.rmSync(dst);
  fs.writeFileSync(dst + ".partial", data.subarray(0, 3 << 20));
  const r2 = await host.upload(src, dst, { sha256: "sha256-" + Buffer.from(sha, "hex").toString("base64") });
  expect(r2.resumedFrom).toBe(3 << 20);
  expect(r2.bytes).toBe(2 << 20);
  expect(fs.readFileSync(dst).equals(data)).toBe(true);
  expect(fs.existsSync(dst + ".partial")).toBe(false);
  await expect(host.upload(src, path.join(tmp, "x"), { sha256: "nope" })).rejects.toThrow(/neither 64 hex digits nor sha256-<base64>/);
  expect(await host.sha256(path.join(tmp, "absent"))).toBeUndefined();
});
