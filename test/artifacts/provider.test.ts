/**
 * The IsarArtifact / IsarBuild dynamic providers driven directly (no Pulumi engine runs here): an
 * IsarBuild (real kas-container, stand-in engine) feeds IsarArtifacts that go into the real Nix store;
 * diffs never hash; a changed pin replaces; refresh notices changed bytes and a deleted store path; a pin
 * mismatch stops the chain before the dependent step; a failing build shows the log tail.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hexToSri } from "../../lib/model/checks";
import { hashCounters } from "../../lib/artifacts/hash";
import { isStorePathValid } from "../../lib/artifacts/nixstore";
import { providers } from "../../providers/isar";

const FIXTURES = path.resolve(__dirname, "../fixtures/kas");
const { artifact, build } = providers;
let dir: string;
const savedEnv = { ...process.env };
const sha = (s: string | Buffer) => crypto.createHash("sha256").update(s).digest("hex");
/** What the stand-in engine writes into a deployed file. */
const fakeContent = (file: string, seed: string) => `fake ${file} build ${seed}\n`;
const ROOTFS = "isar-image-base-debian-trixie-qemu-amd64.tar.gz";

let seedCounter = 0;
const uniqueSeed = () => `${process.pid}-${Date.now()}-${++seedCounter}`;

function buildInputs(name: string, over: Record<string, unknown> = {}) {
  return {
    kasDir: "isar",
    buildDir: `${name}/build`,
    engine: "podman",
    timeoutSeconds: 120,
    machine: "qemu-amd64",
    image: "k3s-server",
    network: "simple",
    arch: "x86_64",
    imageRecipe: "isar-image-base",
    distro: "debian-trixie",
    projectDir: dir,
    allowRoot: true,
    searchPath: [FIXTURES],
    ...over,
  };
}

async function runBuild(name: string, seed: string) {
  process.env.FAKE_ENGINE_SEED = seed;
  const inputs = buildInputs(name);
  const checked = await build.check!({}, inputs);
  expect(checked.failures).toEqual([]);
  return (await build.create(checked.inputs)).outs;
}

function artifactInputs(file: string, sha256: string, over: Record<string, unknown> = {}) {
  return {
    name: "qemu-amd64-rootfs",
    machine: "qemu-amd64",
    version: "b1",
    kind: "rootfs",
    sha256,
    path: path.relative(dir, file),
    projectDir: dir,
    stack: "dev",
    configPath: "artifacts.qemu-amd64.rootfs",
    ...over,
  };
}

beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "isar-provider-test-")));
  fs.cpSync(path.join(FIXTURES, "tree"), path.join(dir, "isar"), { recursive: true });
  execFileSync("git", ["init", "-q", path.join(dir, "isar")]);
  process.env.SHELL = "/bin/bash";
});
afterAll(() => {
  process.env = savedEnv;
  fs.rmSync(dir, { recursive: true, force: true });
});

test("check rejects bad artifact inputs with per-property reasons", async () => {
  const r = await artifact.check!(
    {},
    { name: "x", machine: "Bad Machine", version: "1", kind: "tarball", sha256: "abc", path: "a", url: "ftp://x", projectDir: dir },
  );
  const props = r.failures!.map((f) => f.property).sort();
  expect(props).toEqual(expect.arrayContaining(["machine", "kind", "sha256", "url"]));
  expect(r.failures!.find((f) => f.property === "sha256")!.reason).toMatch(/npm run pin/);
  const b = await build.check!({}, buildInputs("x", { image: "k3s-master", timeoutSeconds: 0 }));
  expect(b.failures!.map((f) => f.property).sort()).toEqual(["image", "timeoutSeconds"]);
});

describe("IsarBuild feeds IsarArtifact", () => {
  let b: Record<string, any>;
  let seed: string;
  let state: Record<string, any>;

  beforeAll(async () => {
    seed = uniqueSeed();
    b = await runBuild("flow", seed);
  });

  test("the build outputs are ISAR-named files in the deploy dir", () => {
    expect(b.deployDir).toBe(path.join(dir, "flow/build/tmp/deploy/images/qemu-amd64"));
    expect(b.rootfs).toBe(path.join(b.deployDir, ROOTFS));
    expect(b.kernel).toBe(path.join(b.deployDir, "isar-image-base-debian-trixie-qemu-amd64-vmlinuz"));
    expect(b.dtbs).toEqual([]);
    expect(fs.existsSync(b.logPath)).toBe(true);
  });

  test("pin mismatch: create fails, nothing enters the store, the dependent step does not run", async () => {
    const pinned = sha("a previous build");
    let dependentRan = false;
    const err = await artifact
      .create(artifactInputs(b.rootfs, pinned))
      .then(() => {
        dependentRan = true;
      })
      .catch((e) => e);
    expect(dependentRan).toBe(false);
    expect(err.message).toContain("hash mismatch in ISAR artifact 'qemu-amd64-rootfs'");
    expect(err.message).toContain(`specified: ${hexToSri(pinned)}`);
    expect(err.message).toContain(`got:       ${hexToSri(sha(fakeContent(ROOTFS, seed)))}`);
    expect(err.message).toContain("npm run pin -- --stack dev --machine qemu-amd64");
  });

  test("matching pin: create imports into the store", async () => {
    const hex = sha(fakeContent(ROOTFS, seed));
    const r = await artifact.create(artifactInputs(b.rootfs, hex));
    state = r.outs;
    expect(r.id).toBe(state.storePath);
    expect(await isStorePathValid(state.storePath)).toBe(true);
    expect(fs.readFileSync(state.storePath, "utf8")).toBe(fakeContent(ROOTFS, seed));
    expect(state).toMatchObject({ sha256: hex, sri: hexToSri(hex), size: fakeContent(ROOTFS, seed).length, drift: [], version: "b1" });
  });

  test("unchanged pin (even rewritten hex → SRI): no changes and no hashing", async () => {
    const n = { ...hashCounters };
    const same = await artifact.diff!(state.storePath, state, artifactInputs(b.rootfs, state.sha256));
    expect(same.changes).toBe(false);
    const sri = await artifact.diff!(state.storePath, state, artifactInputs(b.rootfs, hexToSri(state.sha256)));
    expect(sri.changes).toBe(false);
    expect(hashCounters).toEqual(n);
  });

  test("changed pin or source replaces (create before delete); metadata updates in place without hashing", async () => {
    const pin = await artifact.diff!(state.storePath, state, artifactInputs(b.rootfs, sha("new build")));
    expect(pin).toEqual({ changes: true, replaces: ["sha256"], deleteBeforeReplace: false });
    const src = await artifact.diff!(state.storePath, state, artifactInputs(b.wic, state.sha256));
    expect(src.replaces).toEqual(["path"]);
    const toUrl = await artifact.diff!(state.storePath, state, { ...artifactInputs(b.rootfs, state.sha256), path: undefined, url: "http://ci/x.tar.gz" });
    expect(toUrl.replaces).toEqual(["path", "url"]);

    const meta = artifactInputs(b.rootfs, state.sha256, { version: "b1-relabelled" });
    const d = await artifact.diff!(state.storePath, state, meta);
    expect(d).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    const n = hashCounters.files;
    const u = await artifact.update!(state.storePath, state, meta);
    expect(hashCounters.files).toBe(n);
    expect(u.outs).toMatchObject({ version: "b1-relabelled", storePath: state.storePath, sha256: state.sha256 });
  });

  test("refresh: unchanged file is not re-hashed; a rebuilt file is noticed and forces a replace", async () => {
    let n = hashCounters.files;
    const quiet = await artifact.read!(state.storePath, state);
    expect(hashCounters.files).toBe(n);
    expect(quiet.props.drift).toEqual([]);
    expect(quiet.props.storePath).toBe(state.storePath);

    // a new build overwrites the deploy dir with different bytes
    const seed2 = uniqueSeed();
    await runBuild("flow", seed2);
    n = hashCounters.files;
    const noticed = await artifact.read!(state.storePath, state);
    expect(hashCounters.files).toBe(n + 1);
    expect(noticed.props.drift.join("\n")).toMatch(/changed: was sha256-.* now sha256-/);
    expect(noticed.props.sha256).toBe(sha(fakeContent(ROOTFS, seed2)));
    expect(noticed.props.storePath).toBe("");

    // next up with the old pin: replace, and the re-import fails with the mismatch
    const d = await artifact.diff!(state.storePath, noticed.props, artifactInputs(b.rootfs, state.sha256));
    expect(d.replaces).toContain("storePath");
    await expect(artifact.create(artifactInputs(b.rootfs, state.sha256))).rejects.toThrow(/hash mismatch/);
    // after `npm run pin` the new pin imports
    const again = await artifact.create(artifactInputs(b.rootfs, sha(fakeContent(ROOTFS, seed2))));
    expect(again.outs.storePath).not.toBe(state.storePath);
    state = again.outs;
  });

  test("refresh notices a store path removed by the garbage collector; create adds it again", async () => {
    execFileSync("nix-store", ["--delete", state.storePath], { stdio: "pipe" });
    expect(await isStorePathValid(state.storePath)).toBe(false);
    const r = await artifact.read!(state.storePath, state);
    expect(r.props.drift.join("\n")).toMatch(/vanished/);
    const d = await artifact.diff!(state.storePath, r.props, artifactInputs(b.rootfs, state.sha256));
    expect(d.replaces).toEqual(["storePath"]);
    const c = await artifact.create(artifactInputs(b.rootfs, state.sha256));
    expect(c.outs.storePath).toBe(state.storePath);
    expect(await isStorePathValid(state.storePath)).toBe(true);
  });

  test("delete leaves the store path (GC's job)", async () => {
    await artifact.delete!(state.storePath, state);
    expect(await isStorePathValid(state.storePath)).toBe(true);
  });

  test("IsarBuild diff: image-shaping inputs rebuild, cache dirs and timeout do not; vanished outputs rebuild", async () => {
    const inputs = buildInputs("flow");
    expect((await build.diff!("id", b, inputs)).changes).toBe(false);
    expect((await build.diff!("id", b, { ...inputs, network: "vlans" })).replaces).toEqual(["network"]);
    expect((await build.diff!("id", b, { ...inputs, triggers: ["abc123"] })).replaces).toEqual(["triggers"]);
    expect(await build.diff!("id", b, { ...inputs, timeoutSeconds: 7200, sstateDir: "cache/sstate" })).toEqual({
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });
    fs.rmSync(b.kernel);
    const r = await build.read!("id", b);
    expect(r.props.missing).toEqual([b.kernel]);
    expect((await build.diff!("id", r.props, inputs)).replaces).toEqual(["deployDir"]);
  });
});

test("a failing IsarBuild surfaces exit code, log tail and log path", async () => {
  process.env.FAKE_ENGINE_FAIL = "1";
  try {
    const err = await build.create(buildInputs("broken")).catch((e) => e);
    expect(err.message).toMatch(/failed with exit code 2/);
    expect(err.message).toMatch(/Last 40 lines of the log:/);
    expect(err.message).toContain("ERROR: Task (/repo/meta-isar-k3s/recipes-core/images/isar-image-base.bb:do_rootfs_install) failed");
    expect(err.message).toMatch(new RegExp(`Full log: ${dir}/broken/build/isar-k3s-logs/kas-build-qemu-amd64-k3s-server-.*\\.log`));
  } finally {
    delete process.env.FAKE_ENGINE_FAIL;
  }
});

test("a missing artifact file names the kas-container command", async () => {
  const err = await artifact
    .create(artifactInputs(path.join(dir, "nope", ROOTFS), sha("x"), { kasDir: "isar", network: "bonding-vlans", kasImage: "k3s-agent" }))
    .catch((e) => e);
  expect(err.message).toContain(
    `cd ${dir}/isar && kas-container --isar build kas/base.yml:kas/machine/qemu-amd64.yml:kas/image/k3s-agent.yml:kas/network/bonding-vlans.yml`,
  );
});

test("each provider serializes to a closure that requires lib/ at run time instead of inlining it", async () => {
  const sc = require("@pulumi/pulumi/runtime/closure/serializeClosure");
  for (const p of [artifact, build]) {
    const sf = await sc.serializeFunction(() => p, { allowSecrets: true });
    expect(sf.text).toContain(`ROOT: ${JSON.stringify(path.resolve(__dirname, "../.."))}`);
    expect(sf.text).toContain('require(ROOT + "/lib/artifacts/isar-provider")');
    expect(sf.text).not.toMatch(/function (diffArtifact|importArtifact|runKasBuild)\b/);
  }
});
