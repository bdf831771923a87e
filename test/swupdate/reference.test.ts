/**
 * What Debian's swupdate 2022.12 on this machine really does with `-c`, where it differs from (or adds
 * to) shared/REFERENCE.md. Each test pins one observed behaviour:
 * - `-k` is mandatory (no config file is needed); sockets go to TMPDIR, hence one TMPDIR per run.
 * - `-H board:rev` checks the board name only when the entries are nested under `software.<board>`;
 *   a top-level `hardware-compatibility` (REFERENCE's example, the seed's template) accepts any board.
 * - Exit status of a successful check is not reliable: some runs exit 1 although the log says
 *   "SWUPDATE successful" and has no ERROR (race at exit); swupdateCheck retries those.
 * - With `-c` the images are hashed over the stored (encrypted) bytes and then decrypted and fed to the
 *   dummy handler: a wrong AES key (-K) is rejected ("Decryption error ... bad decrypt").
 * - The cpio "crc" checksum is verified ("Checksum WRONG").
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { CpioWriter } from "../../lib/swupdate/cpio";
import { buildBundle } from "../../lib/swupdate/bundle";
import { renderSwDescription } from "../../lib/swupdate/swdescription";
import { formatAesKeyFile, signSwDescription } from "../../lib/swupdate/sign";
import { run } from "../../lib/swupdate/run";
import { TestSigner, makeSigner, swupdateCheck, tempDir } from "./helpers";

jest.setTimeout(120_000);

let dir: string;
let signer: TestSigner;
let image: string;
let imageSha: string;

beforeAll(async () => {
  dir = await tempDir("swu-ref-");
  signer = await makeSigner(dir, "signer");
  image = path.join(dir, "rootfs.ext4");
  const d = crypto.randomBytes(20_000);
  await fs.promises.writeFile(image, d);
  imageSha = crypto.createHash("sha256").update(d).digest("hex");
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

async function rawSwu(board: string | undefined, out: string, checkOverride?: number): Promise<void> {
  const swd = Buffer.from(
    renderSwDescription({
      version: "1.0",
      board,
      hardwareCompatibility: ["1.0"],
      entries: { images: [{ filename: "rootfs.ext4", type: "raw", device: "/dev/null", sha256: imageSha }] },
    }),
  );
  const sig = await signSwDescription(swd, { method: "cms", key: signer.key, certificate: signer.cert });
  const ws = fs.createWriteStream(out);
  const w = new CpioWriter(ws);
  await w.addBuffer("sw-description", swd);
  await w.addBuffer("sw-description.sig", sig);
  const scan = await (await import("../../lib/swupdate/cpio")).scanFile(image);
  await w.addFile("rootfs.ext4", image, checkOverride === undefined ? scan : { ...scan, check: checkOverride });
  await w.finish();
  await new Promise<void>((resolve) => ws.end(resolve));
}

test("-k is mandatory: without it swupdate refuses before reading the bundle", async () => {
  const out = path.join(dir, "nokey.swu");
  await rawSwu("jetson-orin-nano", out);
  const tmp = await tempDir("swu-ref-nokey-");
  const r = await run(["swupdate", "-c", "-H", "jetson-orin-nano:1.0", "-i", out], { env: { ...process.env, TMPDIR: tmp } });
  await fs.promises.rm(tmp, { recursive: true, force: true });
  expect(r.code).toBe(1);
  expect(r.outputTail).toMatch(/built for signed images, provide a public key file/);
});

test("top-level hardware-compatibility (no board section) accepts ANY board name; nested does not", async () => {
  const flat = path.join(dir, "flat.swu");
  await rawSwu(undefined, flat);
  expect((await swupdateCheck(flat, signer.certPath, "some-other-board", "1.0")).accepted).toBe(true);
  expect((await swupdateCheck(flat, signer.certPath, "some-other-board", "2.0")).accepted).toBe(false);
  const nested = path.join(dir, "nested.swu");
  await rawSwu("jetson-orin-nano", nested);
  expect((await swupdateCheck(nested, signer.certPath, "jetson-orin-nano", "1.0")).accepted).toBe(true);
  expect((await swupdateCheck(nested, signer.certPath, "some-other-board", "1.0")).accepted).toBe(false);
});

test("the cpio crc checksum is verified: a wrong check field alone is rejected", async () => {
  const out = path.join(dir, "badcrc.swu");
  await rawSwu("jetson-orin-nano", out, 12345);
  const c = await swupdateCheck(out, signer.certPath, "jetson-orin-nano", "1.0");
  expect(c.accepted).toBe(false);
  expect(c.log).toMatch(/Checksum WRONG/);
});

test("exit status of successful checks: every non-zero exit still logs success and no ERROR (the race swupdateCheck retries)", async () => {
  const out = path.join(dir, "race.swu");
  await rawSwu("jetson-orin-nano", out);
  const codes: (number | null)[] = [];
  for (let i = 0; i < 8; i++) {
    const tmp = await tempDir("swu-ref-race-");
    const r = await run(["swupdate", "-c", "-k", signer.certPath, "-H", "jetson-orin-nano:1.0", "-i", out], { env: { ...process.env, TMPDIR: tmp } });
    await fs.promises.rm(tmp, { recursive: true, force: true });
    codes.push(r.code);
    const log = r.stdout.toString();
    expect(log).toMatch(/SWUPDATE successful/);
    expect(log).not.toMatch(/\[ERROR\]/);
    expect([0, 1]).toContain(r.code);
  }
  expect(codes).toContain(0);
  // Observed on this machine: roughly one run in four exits 1 here.
  console.log(`swupdate -c exit codes for a valid bundle: ${codes.join(" ")}`);
});

test("-c decrypts too: checked with the wrong AES key (-K) the bundle is rejected (bad decrypt)", async () => {
  // Fixed key, IV and content: a wrong key is caught by the PKCS#7 padding check, which a random wrong
  // key would pass about once in 256 runs; fixed bytes make the outcome reproducible.
  const plain = path.join(dir, "fixed.ext4");
  await fs.promises.writeFile(plain, Buffer.alloc(20_000, 7));
  const good = { key: Buffer.alloc(32, 1), iv: Buffer.alloc(16, 2) };
  const wrong = { key: Buffer.alloc(32, 3), iv: Buffer.alloc(16, 2) };
  const wrongFile = path.join(dir, "wrong.key");
  const goodFile = path.join(dir, "good.key");
  await fs.promises.writeFile(wrongFile, formatAesKeyFile(wrong), { mode: 0o600 });
  await fs.promises.writeFile(goodFile, formatAesKeyFile(good), { mode: 0o600 });
  const b = await buildBundle({
    hardware: "jetson-orin-nano",
    hwRevisions: ["1.0"],
    version: "1.0",
    images: [{ path: plain, kind: "rootfs", device: "/dev/null" }],
    signing: "cms",
    key: signer.key,
    cert: signer.cert,
    encrypt: formatAesKeyFile(good),
    outPath: path.join(dir, "enc.swu"),
  });
  const bad = await swupdateCheck(b.path, signer.certPath, "jetson-orin-nano", "1.0", { aesKeyFile: wrongFile });
  expect(bad.accepted).toBe(false);
  expect(bad.log).toMatch(/Decryption error/);
  expect((await swupdateCheck(b.path, signer.certPath, "jetson-orin-nano", "1.0", { aesKeyFile: goodFile })).accepted).toBe(true);
});
