/**
 * Hashing: our sha256 against sha256sum, our Nix base32 against the real nix-hash, the stat cache, and
 * http downloads against a local server (complete, truncated, 404, corrupted, redirect).
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import * as os from "os";
import * as path from "path";
import { DownloadError, HashCache, HashMismatchError, downloadToFile, fromNixBase32, hashCounters, hashFile, toNixBase32 } from "../../lib/artifacts/hash";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "hash-test-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, data: Buffer | string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

describe("hashFile", () => {
  test.each([
    ["empty", 0],
    ["one byte", 1],
    ["exactly one chunk", 64 * 1024],
    ["chunk + 1", 64 * 1024 + 1],
    ["many chunks", 1_000_003],
  ])("%s (%d bytes) matches sha256sum, nix-hash base32 and SRI", async (_label, size) => {
    const p = write(`f-${size}`, crypto.randomBytes(size));
    const h = await hashFile(p, { chunkSize: 64 * 1024 });
    const sum = execFileSync("sha256sum", [p], { encoding: "utf8" }).split(" ")[0];
    const nix32 = execFileSync("nix-hash", ["--type", "sha256", "--flat", "--base32", p], { encoding: "utf8" }).trim();
    const nixHex = execFileSync("nix-hash", ["--type", "sha256", "--flat", p], { encoding: "utf8" }).trim();
    expect(h.hex).toBe(sum);
    expect(h.hex).toBe(nixHex);
    expect(h.nixBase32).toBe(nix32);
    expect(h.sri).toBe("sha256-" + Buffer.from(sum, "hex").toString("base64"));
    expect(h.size).toBe(size);
  });

  test("nix base32 round-trips and matches nix-hash --to-base32 on 50 random digests", () => {
    const hexes = Array.from({ length: 50 }, () => crypto.randomBytes(32).toString("hex"));
    const theirs = execFileSync("nix-hash", ["--type", "sha256", "--to-base32", ...hexes], { encoding: "utf8" })
      .trim()
      .split("\n");
    hexes.forEach((hex, i) => {
      const ours = toNixBase32(Buffer.from(hex, "hex"));
      expect(ours).toBe(theirs[i]);
      expect(fromNixBase32(ours, 32)!.toString("hex")).toBe(hex);
    });
    expect(fromNixBase32("e".repeat(52), 32)).toBeUndefined(); // 'e' is not in Nix's alphabet
  });

  test("a missing file throws ENOENT", async () => {
    await expect(hashFile(path.join(dir, "nope"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("HashCache", () => {
  test("an unchanged file is not re-hashed; a rewrite of the same size is", async () => {
    const cacheFile = path.join(dir, "cache", "hashes.json");
    const p = write("cached.bin", "A".repeat(10000));
    const cache = new HashCache(cacheFile);
    const before = hashCounters.files;
    const first = await cache.hash(p);
    expect(first.cached).toBe(false);
    expect(hashCounters.files).toBe(before + 1);

    // a second cache object reading the persisted file: still no hashing
    const again = await new HashCache(cacheFile).hash(p);
    expect(again.cached).toBe(true);
    expect(again.hex).toBe(first.hex);
    expect(hashCounters.files).toBe(before + 1);

    // same size, mtime forced back: ctime still moves, so the cache must miss
    const st = fs.statSync(p);
    fs.writeFileSync(p, "B".repeat(10000));
    fs.utimesSync(p, st.atime, st.mtime);
    const changed = await cache.hash(p);
    expect(changed.cached).toBe(false);
    expect(changed.hex).not.toBe(first.hex);
    expect(hashCounters.files).toBe(before + 2);
    expect(await cache.lookup(p)).toMatchObject({ hex: changed.hex });
  });

  test("a corrupt cache file is ignored", async () => {
    const cacheFile = write("corrupt.json", "{not json");
    const p = write("c2.bin", "xyz");
    const r = await new HashCache(cacheFile).hash(p);
    expect(r.cached).toBe(false);
    expect(r.hex).toBe(crypto.createHash("sha256").update("xyz").digest("hex"));
  });
});

describe("downloadToFile", () => {
  const body = crypto.randomBytes(300_000);
  const bodyHex = crypto.createHash("sha256").update(body).digest("hex");
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === "/ok.bin") {
        res.writeHead(200, { "content-length": body.length });
        res.end(body);
      } else if (req.url === "/redirect") {
        res.writeHead(302, { location: "/ok.bin" });
        res.end();
      } else if (req.url === "/truncated.bin") {
        res.writeHead(200, { "content-length": body.length });
        res.write(body.subarray(0, 100_000), () => res.socket?.destroy());
      } else if (req.url === "/truncated-chunked.bin") {
        res.writeHead(200); // chunked transfer encoding, connection dropped before the last chunk
        res.write(body.subarray(0, 50_000), () => res.socket?.destroy());
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found");
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test("complete download with the right hash lands at dest", async () => {
    const dest = path.join(dir, "dl", "ok.bin");
    const h = await downloadToFile(`${base}/ok.bin`, dest, { expectedHex: bodyHex });
    expect(h.hex).toBe(bodyHex);
    expect(h.size).toBe(body.length);
    expect(fs.readFileSync(dest).equals(body)).toBe(true);
    expect(fs.readdirSync(path.dirname(dest))).toEqual(["ok.bin"]);
  });

  test("redirects are followed", async () => {
    const dest = path.join(dir, "dl-r", "ok.bin");
    expect((await downloadToFile(`${base}/redirect`, dest, { expectedHex: bodyHex })).hex).toBe(bodyHex);
  });

  test("404 says so and leaves nothing behind", async () => {
    const dest = path.join(dir, "dl404", "missing.bin");
    const err = await downloadToFile(`${base}/missing.bin`, dest).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.status).toBe(404);
    expect(err.message).toMatch(/HTTP 404/);
    expect(err.message).toContain(`${base}/missing.bin`);
    expect(err.message).toMatch(/check the pin's url/);
    expect(fs.existsSync(dest)).toBe(false);
  });

  test.each(["truncated.bin", "truncated-chunked.bin"])("a truncated transfer (%s) is an error and leaves no file", async (name) => {
    const dest = path.join(dir, `dl-${name}`, name);
    const err = await downloadToFile(`${base}/${name}`, dest, { expectedHex: bodyHex }).catch((e) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err.message).toMatch(/truncated|interrupted/);
    expect(fs.existsSync(dest)).toBe(false);
    expect(fs.readdirSync(path.dirname(dest))).toEqual([]);
  });

  test("wrong bytes: hash mismatch, destination untouched", async () => {
    const dest = path.join(dir, "dl-bad", "ok.bin");
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, "previous content");
    const wrong = "0".repeat(64);
    const err = await downloadToFile(`${base}/ok.bin`, dest, { expectedHex: wrong }).catch((e) => e);
    expect(err).toBeInstanceOf(HashMismatchError);
    expect(err.message).toContain("specified: sha256-AAAAAAAA");
    expect(err.message).toContain("got:       sha256-" + Buffer.from(bodyHex, "hex").toString("base64"));
    expect(fs.readFileSync(dest, "utf8")).toBe("previous content");
    expect(fs.readdirSync(path.dirname(dest))).toEqual(["ok.bin"]);
  });
});
