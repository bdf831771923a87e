/**
 * buildBundle against the real tools: Debian's swupdate 2022.12 (`swupdate -c`, each run in its own
 * TMPDIR) accepts our signed bundles and rejects a flipped image byte (HASH mismatch), a bundle signed
 * by another key, a board revision not listed and another board; GNU cpio lists and extracts the bundle
 * byte-for-byte. Also: A/B selections, AES encryption (-K), zstd-compressed images, tarball rootfs,
 * libconfig escapes as swupdate reads them, pin mismatches and atomic output.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import { BuildBundleOptions, buildBundle } from "../../lib/swupdate/bundle";
import { formatAesKeyFile } from "../../lib/swupdate/sign";
import { run } from "../../lib/swupdate/run";
import { TestSigner, makeSigner, swupdateCheck, tempDir } from "./helpers";

// swupdateCheck retries a hung swupdate (40 s each): room for a retry within one test.
jest.setTimeout(300_000);

let dir: string;
let signer: TestSigner;
let other: TestSigner;
let rootfs: string;
let kernel: string;
let dtb: string;
let rootfsSha: string;

const HW = "jetson-orin-nano";

function opts(over: Partial<BuildBundleOptions> = {}): BuildBundleOptions {
  return {
    hardware: HW,
    hwRevisions: ["1.0", "1.1"],
    version: "2025.01.15-build.42",
    images: [
      { path: rootfs, kind: "rootfs", device: "/dev/mmcblk0p1", sha256: rootfsSha },
      { path: kernel, kind: "kernel", name: "Image" },
      { path: dtb, kind: "dtb" },
    ],
    signing: "cms",
    key: signer.key,
    cert: signer.cert,
    outPath: path.join(dir, "out", `${crypto.randomBytes(4).toString("hex")}.swu`),
    ...over,
  };
}

beforeAll(async () => {
  dir = await tempDir("swu-bundle-test-");
  signer = await makeSigner(dir, "signer");
  other = await makeSigner(dir, "other");
  rootfs = path.join(dir, "rootfs.ext4");
  const data = crypto.randomBytes(300_001);
  await fs.promises.writeFile(rootfs, data);
  rootfsSha = crypto.createHash("sha256").update(data).digest("hex");
  kernel = path.join(dir, "isar-image-base-debian-trixie-jetson-orin-nano-vmlinux");
  await fs.promises.writeFile(kernel, crypto.randomBytes(12_345));
  dtb = path.join(dir, "tegra234-p3768-0000+p3767-0005-nv.dtb");
  await fs.promises.writeFile(dtb, crypto.randomBytes(999));
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

describe("a CMS-signed bundle", () => {
  let bundle: Awaited<ReturnType<typeof buildBundle>>;
  beforeAll(async () => {
    bundle = await buildBundle(opts());
  });

  test("swupdate -c accepts it for every listed revision", async () => {
    for (const rev of ["1.0", "1.1"]) {
      const c = await swupdateCheck(bundle.path, signer.certPath, HW, rev);
      expect(c.log).not.toMatch(/\[ERROR\]/);
      expect(c.accepted).toBe(true);
    }
  });

  test("result: size and sha256 of the file; GNU cpio lists sw-description, .sig first and extracts every byte", async () => {
    const bytes = await fs.promises.readFile(bundle.path);
    expect(bundle.size).toBe(bytes.length);
    expect(bundle.size % 512).toBe(0);
    expect(bundle.sha256).toBe(crypto.createHash("sha256").update(bytes).digest("hex"));
    const list = await run(["cpio", "-t", "--quiet", "-F", bundle.path]);
    expect(list.stdout.toString().trim().split("\n")).toEqual([
      "sw-description",
      "sw-description.sig",
      "rootfs.ext4",
      "Image",
      "tegra234-p3768-0000+p3767-0005-nv.dtb",
      "post-update.sh",
    ]);
    const x = await fs.promises.mkdtemp(path.join(dir, "x-"));
    const ex = await run(["cpio", "-i", "--quiet", "-F", bundle.path], { cwd: x });
    expect(ex.code).toBe(0);
    expect(ex.outputTail).toBe("");
    expect((await fs.promises.readFile(path.join(x, "rootfs.ext4"))).equals(await fs.promises.readFile(rootfs))).toBe(true);
    expect((await fs.promises.readFile(path.join(x, "Image"))).equals(await fs.promises.readFile(kernel))).toBe(true);
    expect(await fs.promises.readFile(path.join(x, "sw-description"), "utf8")).toBe(bundle.swDescription);
    expect(bundle.swDescription).toContain(`sha256 = "${rootfsSha}"`);
    expect(bundle.swDescription).toContain('path = "/boot/Image"');
    for (const e of bundle.entries) {
      const f = await fs.promises.readFile(path.join(x, e.name));
      expect(crypto.createHash("sha256").update(f).digest("hex")).toBe(e.sha256);
    }
    // No temp files left next to the bundle.
    expect((await fs.promises.readdir(path.dirname(bundle.path))).filter((n) => n.startsWith("."))).toEqual([]);
  });

  test("one flipped byte in an image: rejected with HASH mismatch", async () => {
    const bytes = await fs.promises.readFile(bundle.path);
    const at = bytes.indexOf(Buffer.from("rootfs.ext4\0")) + 12 + 1000;
    bytes[at] ^= 0x01;
    const bad = path.join(dir, "flipped.swu");
    await fs.promises.writeFile(bad, bytes);
    const c = await swupdateCheck(bad, signer.certPath, HW, "1.0");
    expect(c.accepted).toBe(false);
    expect(c.log).toMatch(/HASH mismatch/);
  });

  test("a board revision not in hardware-compatibility: rejected", async () => {
    const c = await swupdateCheck(bundle.path, signer.certPath, HW, "2.0");
    expect(c.accepted).toBe(false);
    expect(c.log).toMatch(/SW not compatible with hardware/);
  });

  test("another board: rejected (entries are nested under the hardware name)", async () => {
    const c = await swupdateCheck(bundle.path, signer.certPath, "turing-rk1", "1.0");
    expect(c.accepted).toBe(false);
    expect(c.log).toMatch(/HW compatibility not found|Found nothing to install/);
  });

  test("checked against another key's certificate: rejected", async () => {
    const c = await swupdateCheck(bundle.path, other.certPath, HW, "1.0");
    expect(c.accepted).toBe(false);
    expect(c.log).toMatch(/ERROR/);
  });
});

test("a bundle signed by another key: rejected", async () => {
  const b = await buildBundle(opts({ key: other.key, cert: other.cert }));
  const c = await swupdateCheck(b.path, signer.certPath, HW, "1.0");
  expect(c.accepted).toBe(false);
  expect(c.log).toMatch(/ERROR/);
  // ...while the matching certificate accepts the very same file (the rejection is about the key).
  expect((await swupdateCheck(b.path, other.certPath, HW, "1.0")).accepted).toBe(true);
});

test("A/B selections: accepted with -e stable,main and -e stable,alt; refused without -e or with an unknown mode", async () => {
  const b = await buildBundle(
    opts({
      images: [
        { path: rootfs, kind: "rootfs" },
        { path: kernel, kind: "kernel", name: "Image" },
      ],
      selection: { set: "stable", rootDevices: { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" } },
    }),
  );
  expect(b.swDescription).toMatch(/stable = \{\s+main = \{/);
  for (const sel of ["stable,main", "stable,alt"]) {
    const c = await swupdateCheck(b.path, signer.certPath, HW, "1.0", { select: sel, verbose: true });
    expect(c.accepted).toBe(true);
    expect(c.log).toContain(`rootfs.ext4 in device : /dev/mmcblk0p${sel.endsWith("main") ? 1 : 2}`);
  }
  expect((await swupdateCheck(b.path, signer.certPath, HW, "1.0")).accepted).toBe(false);
  expect((await swupdateCheck(b.path, signer.certPath, HW, "1.0", { select: "stable,beta" })).accepted).toBe(false);
  expect((await swupdateCheck(b.path, signer.certPath, HW, "9.9", { select: "stable,main" })).accepted).toBe(false);
});

test("AES-256-CBC: every image encrypted with its ivt; accepted with -K; sha256 is over the ciphertext", async () => {
  const aes = { key: crypto.randomBytes(32), iv: crypto.randomBytes(16) };
  const keyText = formatAesKeyFile(aes);
  const keyFile = path.join(dir, "aes.key");
  await fs.promises.writeFile(keyFile, keyText, { mode: 0o600 });
  const b = await buildBundle(opts({ encrypt: keyText }));
  expect(b.swDescription.match(/encrypted = true;/g)).toHaveLength(3);
  const c = await swupdateCheck(b.path, signer.certPath, HW, "1.0", { aesKeyFile: keyFile });
  expect(c.accepted).toBe(true);
  // Decrypt the stored rootfs with openssl and the ivt from sw-description.
  const x = await fs.promises.mkdtemp(path.join(dir, "xe-"));
  await run(["cpio", "-i", "--quiet", "-F", b.path], { cwd: x });
  const ivt = /filename = "rootfs.ext4";[^}]*ivt = "([0-9a-f]{32})"/.exec(b.swDescription)![1];
  const dec = await run([
    "openssl",
    "enc",
    "-d",
    "-aes-256-cbc",
    "-K",
    aes.key.toString("hex"),
    "-iv",
    ivt,
    "-in",
    path.join(x, "rootfs.ext4"),
    "-out",
    path.join(x, "plain"),
  ]);
  expect(dec.code).toBe(0);
  expect((await fs.promises.readFile(path.join(x, "plain"))).equals(await fs.promises.readFile(rootfs))).toBe(true);
  const stored = await fs.promises.readFile(path.join(x, "rootfs.ext4"));
  expect(b.swDescription).toContain(crypto.createHash("sha256").update(stored).digest("hex"));
  // Same key, same inputs: same sw-description (deterministic ivt).
  expect((await buildBundle(opts({ encrypt: keyText }))).swDescription).toBe(b.swDescription);
  // Encrypted intermediates are gone.
  expect((await fs.promises.readdir(path.dirname(b.path))).filter((n) => !n.endsWith(".swu"))).toEqual([]);
});

test("zstd-compressed rootfs image and tarball rootfs (archive into /) are accepted", async () => {
  const zst = path.join(dir, "rootfs.ext4.zst");
  const z = await run(["zstd", "-q", "-f", "-o", zst, rootfs]);
  expect(z.code).toBe(0);
  const tarDir = await fs.promises.mkdtemp(path.join(dir, "tar-"));
  await fs.promises.mkdir(path.join(tarDir, "etc"));
  await fs.promises.writeFile(path.join(tarDir, "etc", "hostname"), "node\n");
  const tarball = path.join(dir, "rootfs.tar.gz");
  expect((await run(["tar", "-czf", tarball, "-C", tarDir, "."])).code).toBe(0);
  const b = await buildBundle(
    opts({
      images: [
        { path: zst, kind: "wic", name: "disk.wic.zst", device: "/dev/mmcblk0", compressed: "zstd" },
        { path: tarball, kind: "rootfs" },
      ],
    }),
  );
  expect(b.swDescription).toMatch(/filename = "disk.wic.zst";\s+type = "raw";\s+device = "\/dev\/mmcblk0";\s+sha256 = "[0-9a-f]{64}";\s+compressed = "zstd";/);
  expect(b.swDescription).toMatch(/filename = "rootfs.tar.gz";\s+type = "archive";\s+path = "\/";/);
  expect((await swupdateCheck(b.path, signer.certPath, HW, "1.1")).accepted).toBe(true);
  await expect(buildBundle(opts({ images: [{ path: rootfs, kind: "rootfs", device: "/dev/sda", compressed: "zstd" }] }))).rejects.toThrow(
    /declared compressed = "zstd" but does not start with a zstd header/,
  );
});

test('compressed = "zlib" is gzip format for SWUpdate: a .gz image is accepted, a bare zlib stream refused by us', async () => {
  const gz = path.join(dir, "rootfs.ext4.gz");
  expect((await run(["sh", "-c", 'gzip -c "$1" > "$2"', "sh", rootfs, gz])).code).toBe(0);
  const b = await buildBundle(opts({ images: [{ path: gz, kind: "rootfs", device: "/dev/mmcblk0p1", compressed: "zlib" }] }));
  expect(b.swDescription).toContain('compressed = "zlib";');
  expect((await swupdateCheck(b.path, signer.certPath, HW, "1.0")).accepted).toBe(true);
  const bare = path.join(dir, "rootfs.ext4.zlib");
  await fs.promises.writeFile(bare, zlib.deflateSync(await fs.promises.readFile(rootfs)));
  await expect(buildBundle(opts({ images: [{ path: bare, kind: "rootfs", device: "/dev/sda", compressed: "zlib" }] }))).rejects.toThrow(/zlib" is gzip-framed/);
});

test("swupdate's libconfig reads our escapes back: quote, backslash, control characters in a device name", async () => {
  const device = '/dev/disk/by-partlabel/we"ird\\name\x01';
  const b = await buildBundle(opts({ images: [{ path: rootfs, kind: "rootfs", device }], description: 'line1\nline2 "q" \\' }));
  const c = await swupdateCheck(b.path, signer.certPath, HW, "1.0", { verbose: true });
  expect(c.accepted).toBe(true);
  expect(c.log).toContain(`Found Image: rootfs.ext4 in device : ${device} for handler raw`);
});

test("RSA signatures: built deterministically, but Debian's CMS-only swupdate cannot verify them", async () => {
  const a = await buildBundle(opts({ signing: "rsa", cert: undefined }));
  const b = await buildBundle(opts({ signing: "rsa", cert: undefined }));
  expect(a.sha256).toBe(b.sha256); // PKCS#1 v1.5 + fixed layout = byte-identical bundles
  const c = await swupdateCheck(a.path, signer.certPath, HW, "1.0");
  expect(c.accepted).toBe(false);
  expect(c.log).toMatch(/CMS/);
});

describe("refusals", () => {
  test("pinned sha256 mismatch: error names the file; no output, no temp files, previous bundle kept", async () => {
    const out = path.join(dir, "keep", "b.swu");
    const good = await buildBundle(opts({ outPath: out }));
    const before = await fs.promises.readFile(out);
    await expect(buildBundle(opts({ outPath: out, images: [{ path: rootfs, kind: "rootfs", device: "/dev/sda", sha256: "0".repeat(64) }] }))).rejects.toThrow(
      /image .*rootfs\.ext4 has sha256 [0-9a-f]{64}, but 0{64} is pinned/,
    );
    expect((await fs.promises.readFile(out)).equals(before)).toBe(true);
    expect(good.size).toBe(before.length);
    expect(await fs.promises.readdir(path.dirname(out))).toEqual(["b.swu"]);
  });

  test("an image over 4 GiB - 1 is refused before it is read (sparse 4 GiB file)", async () => {
    const huge = path.join(dir, "huge.img");
    const fh = await fs.promises.open(huge, "w");
    await fh.truncate(4 * 1024 * 1024 * 1024);
    await fh.close();
    const t0 = Date.now();
    await expect(buildBundle(opts({ images: [{ path: huge, kind: "rootfs", device: "/dev/sda" }] }))).rejects.toThrow(
      /"huge\.img" is 4294967296 bytes.*4 GiB - 1/,
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    await fs.promises.rm(huge);
  });

  test("names over 250 bytes, duplicate names, missing device, missing certificate", async () => {
    const long = path.join(dir, "l".repeat(251));
    await fs.promises.writeFile(long, "x");
    await expect(buildBundle(opts({ images: [{ path: long, kind: "kernel" }] }))).rejects.toThrow(/is 251 bytes: SWUpdate accepts names of at most 250 bytes/);
    await expect(
      buildBundle(
        opts({
          images: [
            { path: kernel, kind: "kernel" },
            { path: kernel, kind: "dtb" },
          ],
        }),
      ),
    ).rejects.toThrow(/two images are named/);
    await expect(buildBundle(opts({ images: [{ path: rootfs, kind: "rootfs" }] }))).rejects.toThrow(/filesystem image: give its target device/);
    await expect(buildBundle(opts({ cert: undefined }))).rejects.toThrow(/CMS signing needs the certificate/);
  });
});
