/**
 * The cpio member name limit, checked against the real swupdate as a board runs it (TMPDIR=/tmp):
 * a 250-byte name is accepted; 251 bytes is refused by swupdate itself ("Path too long", shown with an
 * archive made by GNU cpio and signed with openssl cms, as the seed's shell pipeline makes them), and
 * our bundle builder refuses it before writing anything.
 */
import * as fs from "fs";
import * as path from "path";
import { buildBundle } from "../../lib/swupdate/bundle";
import { CpioError } from "../../lib/swupdate/cpio";
import { run } from "../../lib/swupdate/run";
import { TestSigner, makeSigner, swupdateCheck } from "./helpers";

jest.setTimeout(180_000);

const HW = "test-board";
let dir: string;
let signer: TestSigner;
let image: string;

beforeAll(async () => {
  // Not under /tmp: the board-like check mounts its own /tmp.
  dir = await fs.promises.mkdtemp("/var/tmp/swu-names-");
  signer = await makeSigner(dir, "names");
  image = path.join(dir, "payload.bin");
  await fs.promises.writeFile(image, Buffer.alloc(4096, 7));
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

function bundle(name: string, out: string) {
  return buildBundle({
    hardware: HW,
    hwRevisions: ["1.0"],
    version: "1.0.0",
    images: [{ path: image, kind: "rootfs", name, device: "/dev/mmcblk0p1" }],
    signing: "cms",
    key: signer.key,
    cert: signer.cert,
    outPath: path.join(dir, out),
  });
}

test("a 250-byte member name passes swupdate -c with TMPDIR=/tmp", async () => {
  const b = await bundle("n".repeat(250), "ok.swu");
  const c = await swupdateCheck(b.path, signer.certPath, HW, "1.0", { boardTmp: true });
  expect(c.log).not.toMatch(/Path too long/);
  expect(c.accepted).toBe(true);
});

test("251 bytes: swupdate refuses it (Path too long), and our builder refuses it first, naming the limit", async () => {
  // The same bundle as above with one more byte in the name, made with the standard tools.
  const ok = await bundle("n".repeat(250), "base.swu");
  const long = "n".repeat(251);
  const work = path.join(dir, "gnu");
  await fs.promises.mkdir(work);
  await fs.promises.writeFile(path.join(work, "sw-description"), ok.swDescription.replace(`"${"n".repeat(250)}"`, `"${long}"`));
  const sig = await run(
    [
      "openssl",
      "cms",
      "-sign",
      "-in",
      "sw-description",
      "-out",
      "sw-description.sig",
      "-signer",
      signer.certPath,
      "-inkey",
      path.join(dir, "names.key"),
      "-outform",
      "DER",
      "-nosmimecap",
      "-binary",
    ],
    { cwd: work },
  );
  expect(sig.code).toBe(0);
  await fs.promises.copyFile(image, path.join(work, long));
  const swu = path.join(dir, "long.swu");
  const cpio = await run(["sh", "-c", 'printf "%s\\n" sw-description sw-description.sig "$1" | cpio -o -H crc --quiet > "$2"', "sh", long, swu], { cwd: work });
  expect(cpio.code).toBe(0);
  const c = await swupdateCheck(swu, signer.certPath, HW, "1.0", { boardTmp: true });
  expect(c.accepted).toBe(false);
  expect(c.log).toMatch(/Path too long/);

  await expect(bundle(long, "refused.swu")).rejects.toThrow(CpioError);
  await expect(bundle(long, "refused.swu")).rejects.toThrow(/251 bytes: SWUpdate accepts names of at most 250 bytes/);
  expect(fs.existsSync(path.join(dir, "refused.swu"))).toBe(false);
});
