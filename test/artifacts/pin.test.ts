/**
 * The pin command on temporary copies of the project's own stack files: only the pinned values change
 * (byte for byte everything else stays), hex stays hex and SRI stays SRI, files go into the real Nix
 * store, an unchanged re-run does not re-hash, a missing file writes nothing, and the edited config still
 * passes the fleet parser.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { hexToSri } from "../../lib/model/checks";
import { parseFleet } from "../../lib/model/parse";
import { hashCounters } from "../../lib/artifacts/hash";
import { fixedOutputStorePath, isStorePathValid } from "../../lib/artifacts/nixstore";
import { main, parseArgs } from "../../scripts/pin";

const ROOT = path.resolve(__dirname, "../..");
const sha = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex");
let dir: string;
const logs: string[] = [];
let logSpy: jest.SpyInstance;
let errSpy: jest.SpyInstance;

beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "pin-test-")));
  process.env.XDG_CACHE_HOME = path.join(dir, "xdg-cache");
  logSpy = jest.spyOn(console, "log").mockImplementation((...a) => void logs.push(a.join(" ")));
  errSpy = jest.spyOn(console, "error").mockImplementation((...a) => void logs.push(a.join(" ")));
});
afterAll(() => {
  logSpy.mockRestore();
  errSpy.mockRestore();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A project dir with a copy of a stack file and fresh, unique deploy outputs at the pinned paths. */
function project(name: string, stackFile: string): { dir: string; file: string; original: string; pins: Map<string, string> } {
  const p = path.join(dir, name, "project");
  fs.mkdirSync(p, { recursive: true });
  const original = fs.readFileSync(path.join(ROOT, stackFile), "utf8");
  const file = path.join(p, "Pulumi.s.yaml");
  fs.writeFileSync(file, original);
  const pins = new Map<string, string>();
  const cfg = YAML.parse(original).config["isar-k3s:artifacts"];
  for (const entry of Object.values(cfg) as Record<string, any>[]) {
    for (const pin of [entry.rootfs, entry.kernel, entry.initramfs, entry.wic, entry.firmware, ...(entry.dtbs ?? [])]) {
      if (!pin?.path) continue;
      const f = path.resolve(p, pin.path);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, `${name} ${pin.path} ${crypto.randomBytes(8).toString("hex")}\n`);
      pins.set(pin.path, sha(fs.readFileSync(f)));
    }
  }
  return { dir: p, file, original, pins };
}

test("argument parsing", () => {
  expect(parseArgs(["--stack", "dev", "--machine", "a", "--machine", "b", "--dry-run"])).toMatchObject({
    stack: "dev",
    machines: ["a", "b"],
    dryRun: true,
    store: true,
  });
  expect(parseArgs([])).toMatch(/--stack is required/);
  expect(parseArgs(["--stack"])).toMatch(/--stack needs a value/);
  expect(parseArgs(["--stack", "dev", "--frobnicate"])).toMatch(/unknown argument "--frobnicate"/);
});

test("one machine of the dev stack: only its sha256 values change, store paths added, old → new printed", async () => {
  const p = project("dev", "Pulumi.dev.yaml");
  logs.length = 0;
  expect(await main(["--stack", "s", "--project-dir", p.dir, "--machine", "turing-rk1"])).toBe(0);
  const now = fs.readFileSync(p.file, "utf8");
  const cfg = YAML.parse(now).config["isar-k3s:artifacts"];
  const rk1 = cfg["turing-rk1"];
  for (const pin of [rk1.rootfs, rk1.kernel, rk1.initramfs, rk1.wic, ...rk1.dtbs]) {
    expect(pin.sha256).toBe(p.pins.get(pin.path));
    expect(await isStorePathValid(fixedOutputStorePath(pin.sha256, path.basename(pin.path)))).toBe(true);
  }
  // other machines untouched; and the text differs from the original only in the five rk1 hashes
  expect(cfg["turing-cm4"]).toEqual(YAML.parse(p.original).config["isar-k3s:artifacts"]["turing-cm4"]);
  const oldLines = p.original.split("\n");
  const newLines = now.split("\n");
  expect(newLines.length).toBe(oldLines.length);
  const differing = oldLines.map((l, i) => [l, newLines[i]]).filter(([a, b]) => a !== b);
  expect(differing).toHaveLength(5);
  for (const [a, b] of differing) {
    expect(a.replace(/sha256: [0-9a-f]{64}/, "")).toBe(b.replace(/sha256: [0-9a-f]{64}/, ""));
  }
  const out = logs.join("\n");
  expect(out).toMatch(/turing-rk1 rootfs isar-image-base-debian-trixie-turing-rk1.tar.gz: 77392f7e71b9… → [0-9a-f]{64}/);
  expect(out).toMatch(/store: \/nix\/store\/[a-z0-9]{32}-rk3588-turing-rk1.dtb/);
  expect(out).toContain(`wrote ${p.file}`);

  // the edited stack still passes the fleet parser
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(YAML.parse(now).config)) raw[k.replace(/^isar-k3s:/, "")] = v;
  expect(() => parseFleet(raw)).not.toThrow();

  // re-run: nothing to do, nothing re-hashed (stat cache persisted under XDG_CACHE_HOME)
  logs.length = 0;
  const n = hashCounters.files;
  expect(await main(["--stack", "s", "--project-dir", p.dir, "--machine", "turing-rk1"])).toBe(0);
  expect(hashCounters.files).toBe(n);
  expect(logs.join("\n")).toContain("all pins in");
  expect(fs.readFileSync(p.file, "utf8")).toBe(now);
});

test("--deploy-dir and --version: paths repointed, SRI pins stay SRI (quoted stays quoted), comments kept", async () => {
  const p = project("deploy", "Pulumi.lab.yaml");
  // make the jetson rootfs pin an SRI in double quotes, with a comment
  const sriOld = hexToSri("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  let text = p.original.replace(
    /(jetson-orin-nano:\n(?:.*\n)*?\s+rootfs: \{ path: [^,]+, sha256: )e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855( \})/,
    `$1"${sriOld}"$2 # pinned by hand`,
  );
  expect(text).toContain(`"${sriOld}" } # pinned by hand`);
  fs.writeFileSync(p.file, text);
  // a fresh build's deploy directory elsewhere
  const deploy = path.join(dir, "deploy", "build", "tmp", "deploy", "images");
  const jd = path.join(deploy, "jetson-orin-nano");
  fs.mkdirSync(jd, { recursive: true });
  const names = [
    "isar-image-base-debian-trixie-jetson-orin-nano.tar.gz",
    "isar-image-base-debian-trixie-jetson-orin-nano-vmlinux",
    "isar-image-base-debian-trixie-jetson-orin-nano-initrd.img",
    "tegra234-p3768-0000+p3767-0005-nv.dtb",
  ];
  for (const n of names) fs.writeFileSync(path.join(jd, n), `new build ${n} ${Math.random()}`);

  logs.length = 0;
  expect(await main(["--stack", "s", "--project-dir", p.dir, "--machine", "jetson-orin-nano", "--deploy-dir", deploy, "--version", "2026.11.22-build.7"])).toBe(
    0,
  );
  text = fs.readFileSync(p.file, "utf8");
  const j = YAML.parse(text).config["isar-k3s:artifacts"]["jetson-orin-nano"];
  expect(j.version).toBe("2026.11.22-build.7");
  expect(j.rootfs.sha256).toBe(hexToSri(sha(fs.readFileSync(path.join(jd, names[0])))));
  expect(text).toMatch(/sha256: "sha256-[A-Za-z0-9+/]{43}=" \} # pinned by hand/);
  expect(j.kernel.sha256).toBe(sha(fs.readFileSync(path.join(jd, names[1]))));
  expect(j.dtbs[0].path).toBe(path.join(jd, names[3])); // outside the project: absolute
  expect(j.dtbs[0].sha256).toBe(sha(fs.readFileSync(path.join(jd, names[3]))));
  // every comment line of the lab stack survives, and the line count is unchanged
  const comments = p.original.split("\n").filter((l) => /^\s*#/.test(l));
  expect(comments.length).toBeGreaterThan(5);
  for (const c of comments) expect(text.split("\n")).toContain(c);
  expect(text.split("\n").length).toBe(p.original.split("\n").length);
  expect(logs.join("\n")).toMatch(/jetson-orin-nano version: 2025.01.15-build.42 → 2026.11.22-build.7/);
  expect(logs.join("\n")).toMatch(/path: \.\.\/isar\/build\/.*-vmlinux → \/.*\/deploy\/build\/tmp\/deploy\/images\/jetson-orin-nano\/.*-vmlinux/);
});

test("a missing deploy output: exit 1, every problem listed, nothing written, nothing stored", async () => {
  const p = project("missing", "Pulumi.dev.yaml");
  const cm4dtb = path.resolve(p.dir, "dev/isar/build/tmp/deploy/images/rpi-arm64-v8/bcm2711-rpi-cm4.dtb");
  fs.rmSync(cm4dtb);
  logs.length = 0;
  expect(await main(["--stack", "s", "--project-dir", p.dir])).toBe(1);
  expect(fs.readFileSync(p.file, "utf8")).toBe(p.original);
  const out = logs.join("\n");
  expect(out).toContain(`error: isar-k3s:artifacts.turing-cm4.dtbs[0]: ${cm4dtb} does not exist`);
  expect(out).toContain("was not changed");
  // the files that were there were hashed but not added to the store
  for (const [pinPath, hex] of p.pins) {
    if (!pinPath.endsWith("bcm2711-rpi-cm4.dtb")) expect(await isStorePathValid(fixedOutputStorePath(hex, path.basename(pinPath)))).toBe(false);
  }
  expect(await main(["--stack", "s", "--project-dir", p.dir, "--machine", "no-such-board"])).toBe(1);
  expect(logs.join("\n")).toContain("--machine no-such-board: no entry");
});

test("--dry-run reports without writing or storing", async () => {
  const p = project("dry", "Pulumi.dev.yaml");
  logs.length = 0;
  expect(await main(["--stack", "s", "--project-dir", p.dir, "--machine", "jetson-orin-nano", "--dry-run"])).toBe(0);
  expect(fs.readFileSync(p.file, "utf8")).toBe(p.original);
  expect(logs.join("\n")).toContain("dry run:");
  const rootfs = [...p.pins.entries()].find(([k]) => k.endsWith("jetson-orin-nano.tar.gz"))!;
  expect(await isStorePathValid(fixedOutputStorePath(rootfs[1], path.basename(rootfs[0])))).toBe(false);
});
