/**
 * Import into the real Nix store (Debian nix-bin, single-user as root): computed store paths against
 * nix-store's, validity checks, pin mismatch (nothing enters the store, nothing downstream runs), missing
 * file (kas-container command in the message), URL sources incl. a corrupted download and a 404.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { hexToSri } from "../../lib/model/checks";
import { DownloadError, HashCache, hashCounters } from "../../lib/artifacts/hash";
import { ArtifactHashMismatchError, MissingArtifactError, importArtifact, inspectArtifact } from "../../lib/artifacts/import";
import { NixStoreError, addFixed, fixedOutputStorePath, isStorePathValid } from "../../lib/artifacts/nixstore";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "import-test-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha = (b: Buffer | string) => crypto.createHash("sha256").update(b).digest("hex");

/** A file with unique content (so its store path is new to this run). */
function artifact(name: string, extra = ""): { file: string; hex: string; data: Buffer } {
  const data = Buffer.concat([Buffer.from(`${name} ${extra} `), crypto.randomBytes(4096)]);
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return { file, hex: sha(data), data };
}

describe("nix store", () => {
  test("computed fixed-output path equals what nix-store --add-fixed returns", async () => {
    const a = artifact("isar-image-base-debian-trixie-qemu-amd64.tar.gz");
    const want = fixedOutputStorePath(a.hex, path.basename(a.file));
    expect(await isStorePathValid(want)).toBe(false);
    const got = await addFixed(a.file, a.hex);
    expect(got).toBe(want);
    expect(await isStorePathValid(got)).toBe(true);
    expect(fs.readFileSync(got).equals(a.data)).toBe(true);
    // and the CLI agrees on the name too
    expect(execFileSync("nix-store", ["--add-fixed", "sha256", a.file], { encoding: "utf8" }).trim()).toBe(want);
  });

  test("a path name with '+' (DTB names) works", async () => {
    const a = artifact("tegra234-p3768-0000+p3767-0005-nv.dtb");
    expect(await addFixed(a.file, a.hex)).toBe(fixedOutputStorePath(a.hex, path.basename(a.file)));
  });

  test("a file that is not what expectedHex says is refused by the store-path cross-check", async () => {
    const a = artifact("cross-check.bin");
    await expect(addFixed(a.file, sha("other bytes"))).rejects.toThrow(/must become/);
  });

  test("an unreachable daemon gives an actionable error", async () => {
    const err = await isStorePathValid("/nix/store/00000000000000000000000000000000-x", { env: { NIX_REMOTE: "daemon" } }).catch((e) => e);
    // a daemon may run on some machines; on this one it does not
    if (err instanceof Error) {
      expect(err).toBeInstanceOf(NixStoreError);
      expect(err.message).toMatch(/daemon is not reachable.*unset NIX_REMOTE/);
    } else {
      expect(err).toBe(false);
    }
  });
});

describe("importArtifact (file)", () => {
  const req = (file: string, sha256: string) => ({
    name: "qemu-amd64-rootfs",
    machine: "qemu-amd64",
    version: "2026.11.22-build.1",
    kind: "rootfs" as const,
    pin: { sha256, path: path.relative(dir, file) },
    projectDir: dir,
    hints: { stack: "dev", configPath: "artifacts.qemu-amd64.rootfs", kasDir: "isar", network: "vlans" as const },
  });

  test("a matching pin (SRI form) imports: outputs carry all hash forms, size, store path", async () => {
    const a = artifact("deploy/ok/isar-image-base-debian-trixie-qemu-amd64.tar.gz");
    const out = await importArtifact(req(a.file, hexToSri(a.hex)));
    const nix32 = execFileSync("nix-hash", ["--type", "sha256", "--flat", "--base32", a.file], { encoding: "utf8" }).trim();
    expect(out).toMatchObject({
      name: "qemu-amd64-rootfs",
      machine: "qemu-amd64",
      version: "2026.11.22-build.1",
      kind: "rootfs",
      size: a.data.length,
      sha256: a.hex,
      sri: hexToSri(a.hex),
      nixBase32: nix32,
      sourcePath: a.file,
    });
    expect(out.storePath).toBe(fixedOutputStorePath(a.hex, "isar-image-base-debian-trixie-qemu-amd64.tar.gz"));
    expect(await isStorePathValid(out.storePath)).toBe(true);
    expect(out.mtimeMs).toBe(fs.statSync(a.file).mtimeMs);
  });

  test("pin mismatch: Nix-style message, nothing added to the store, the dependent step never runs", async () => {
    const a = artifact("deploy/bad/isar-image-base-debian-trixie-qemu-amd64.tar.gz");
    const pinned = sha("the build we pinned last week");
    let downstreamRan = false;
    const err = await importArtifact(req(a.file, pinned))
      .then(() => {
        downstreamRan = true; // e.g. compose the node image from outs.storePath
      })
      .catch((e) => e);
    expect(downstreamRan).toBe(false);
    expect(err).toBeInstanceOf(ArtifactHashMismatchError);
    expect(err.message).toContain("hash mismatch in ISAR artifact 'qemu-amd64-rootfs' (machine qemu-amd64, version 2026.11.22-build.1)");
    expect(err.message).toContain(`specified: ${hexToSri(pinned)}`);
    expect(err.message).toContain(`got:       ${hexToSri(a.hex)}`);
    expect(err.message).toContain("npm run pin -- --stack dev --machine qemu-amd64");
    expect(err.message).toContain(`set isar-k3s:artifacts.qemu-amd64.rootfs.sha256 to "${a.hex}" in Pulumi.dev.yaml`);
    // neither the actual bytes nor the pinned ones entered the store
    expect(await isStorePathValid(fixedOutputStorePath(a.hex, path.basename(a.file)))).toBe(false);
    expect(await isStorePathValid(fixedOutputStorePath(pinned, path.basename(a.file)))).toBe(false);
  });

  test("missing file: the message has the kas-container command that builds it", async () => {
    const file = path.join(dir, "deploy/none/isar-image-base-debian-trixie-qemu-amd64.wic");
    const err = await importArtifact(req(file, sha("x"))).catch((e) => e);
    expect(err).toBeInstanceOf(MissingArtifactError);
    expect(err.message).toContain(`is missing: no file at ${file}`);
    expect(err.message).toContain(
      `cd ${path.join(dir, "isar")} && kas-container --isar build kas/base.yml:kas/machine/qemu-amd64.yml:kas/image/k3s-server.yml:kas/network/vlans.yml`,
    );
    expect(err.message).toContain("npm run pin -- --stack dev --machine qemu-amd64");
    expect(err.buildArgv).toEqual([
      "kas-container",
      "--isar",
      "build",
      "kas/base.yml:kas/machine/qemu-amd64.yml:kas/image/k3s-server.yml:kas/network/vlans.yml",
    ]);
  });

  test("verify 'cached' skips hashing an unchanged file; 'always' does not", async () => {
    const a = artifact("deploy/cache/isar-image-base-debian-trixie-qemu-amd64-vmlinuz");
    const cache = new HashCache();
    await importArtifact({ ...req(a.file, a.hex), kind: "kernel", cache });
    const n = hashCounters.files;
    await importArtifact({ ...req(a.file, a.hex), kind: "kernel", cache, verify: "cached" });
    expect(hashCounters.files).toBe(n);
    await importArtifact({ ...req(a.file, a.hex), kind: "kernel", cache });
    expect(hashCounters.files).toBe(n + 1);
  });

  test("inspect: unchanged → no rehash, no drift; changed bytes → drift; vanished store path → drift", async () => {
    const a = artifact("deploy/inspect/isar-image-base-debian-trixie-qemu-amd64-initrd.img");
    const out = await importArtifact({ ...req(a.file, a.hex), kind: "initramfs" });
    const n = hashCounters.files;
    const same = await inspectArtifact(out);
    expect(same).toMatchObject({ drift: [], rehashed: false });
    expect(hashCounters.files).toBe(n);

    // touched but same bytes: rehash once, no drift, new fingerprint remembered
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(a.file, later, later);
    const touched = await inspectArtifact(out);
    expect(touched).toMatchObject({ drift: [], rehashed: true });
    expect((await inspectArtifact(touched.outputs)).rehashed).toBe(false);

    fs.appendFileSync(a.file, "one more line from a rebuild\n");
    const changed = await inspectArtifact(touched.outputs);
    expect(changed.rehashed).toBe(true);
    expect(changed.drift.join("\n")).toMatch(/source .* changed: was sha256-.*, now sha256-/);
    expect(changed.outputs.sha256).toBe(sha(fs.readFileSync(a.file)));
    expect(changed.outputs.storePath).toBe("");

    // a fake store path that is not in the Nix database
    const gone = await inspectArtifact({ ...out, storePath: fixedOutputStorePath(sha("never added"), "x.img") });
    expect(gone.drift.join("\n")).toMatch(/vanished/);
  });
});

describe("importArtifact (url)", () => {
  const good = Buffer.concat([Buffer.from("ci rootfs "), crypto.randomBytes(200_000)]);
  const corrupted = Buffer.from(good);
  corrupted[1000] ^= 0xff;
  let server: http.Server;
  let base: string;
  const hits: string[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? "");
      if (req.url === "/ci/42/isar-image-base-debian-trixie-jetson-orin-nano.tar.gz") {
        res.writeHead(200, { "content-length": good.length });
        res.end(good);
      } else if (req.url === "/ci/43/isar-image-base-debian-trixie-jetson-orin-nano.tar.gz") {
        res.writeHead(200, { "content-length": corrupted.length });
        res.end(corrupted);
      } else if (req.url === "/ci/44/isar-image-base-debian-trixie-jetson-orin-nano.tar.gz") {
        res.writeHead(200, { "content-length": good.length });
        res.write(good.subarray(0, 1000), () => res.socket?.destroy());
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const req = (build: number) => ({
    name: "jetson-rootfs",
    machine: "jetson-orin-nano",
    version: `ci-${build}`,
    kind: "rootfs" as const,
    pin: { sha256: sha(good), url: `${base}/ci/${build}/isar-image-base-debian-trixie-jetson-orin-nano.tar.gz` },
    projectDir: dir,
    downloadDir: dir,
  });

  test("download, verify, add; a second import finds the store path and does not download", async () => {
    const out = await importArtifact(req(42));
    expect(out.storePath).toBe(fixedOutputStorePath(sha(good), "isar-image-base-debian-trixie-jetson-orin-nano.tar.gz"));
    expect(fs.readFileSync(out.storePath).equals(good)).toBe(true);
    expect(out.sourcePath).toBe(req(42).pin.url);
    const before = hits.length;
    const again = await importArtifact(req(42));
    expect(again.storePath).toBe(out.storePath);
    expect(again.size).toBe(good.length);
    expect(hits.length).toBe(before);
    // staging directories are cleaned up
    expect(fs.readdirSync(dir).filter((n) => n.startsWith("isar-artifact-"))).toEqual([]);
  });

  test("corrupted download: hash mismatch naming the URL, nothing in the store", async () => {
    const r = { ...req(43), pin: { ...req(43).pin, sha256: sha(Buffer.concat([good, Buffer.from("v2")])) } };
    const err = await importArtifact(r).catch((e) => e);
    expect(err).toBeInstanceOf(ArtifactHashMismatchError);
    expect(err.message).toContain(`source:    ${r.pin.url}`);
    expect(err.message).toContain(`got:       ${hexToSri(sha(corrupted))}`);
    expect(await isStorePathValid(fixedOutputStorePath(sha(corrupted), "isar-image-base-debian-trixie-jetson-orin-nano.tar.gz"))).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith("isar-artifact-"))).toEqual([]);
  });

  test("credentials in a URL never reach messages or outputs", async () => {
    const withCreds = (b: number) => req(b).pin.url.replace("http://", "http://ci-user:s3cret@");
    const bad = await importArtifact({ ...req(43), pin: { sha256: sha(`not yet stored ${Date.now()}`), url: withCreds(43) } }).catch((e) => e);
    expect(bad).toBeInstanceOf(ArtifactHashMismatchError);
    expect(bad.message).not.toContain("s3cret");
    expect(bad.message).toContain("http://***@127.0.0.1:");
    const nf = await importArtifact({ ...req(45), pin: { sha256: sha("nothing"), url: withCreds(45) } }).catch((e) => e);
    expect(nf.message).toMatch(/HTTP 404/);
    expect(nf.message).not.toContain("s3cret");
    const ok = await importArtifact({ ...req(42), pin: { ...req(42).pin, url: withCreds(42) } });
    expect(ok.sourcePath).not.toContain("s3cret");
  });

  test("truncated download and 404 are DownloadErrors naming the artifact", async () => {
    const pinNew = (b: number) => ({ ...req(b), pin: { ...req(b).pin, sha256: sha(`unique ${b} ${Date.now()}`) } });
    const t = await importArtifact(pinNew(44)).catch((e) => e);
    expect(t).toBeInstanceOf(DownloadError);
    expect(t.message).toMatch(/ISAR artifact 'jetson-rootfs' \(machine jetson-orin-nano\): download of .* (truncated|interrupted)/);
    const nf = await importArtifact(pinNew(45)).catch((e) => e);
    expect(nf).toBeInstanceOf(DownloadError);
    expect(nf.message).toMatch(/HTTP 404/);
  });
});
