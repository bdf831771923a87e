/**
 * kas-container builds: the real /usr/bin/kas-container (Debian kas 3.1) with KAS_CONTAINER_ENGINE=podman
 * and our stand-in `podman` (and `sudo`, which the script puts in front of podman for ISAR builds) first
 * on PATH. The stand-in records the exact `run` arguments, writes ISAR-named outputs into the mounted
 * build dir, or fails like bitbake. Assertions are on what the real script passed.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { KasBuildError, KasBuildRequest, findDeployOutputs, kasCommand, preflight, runKasBuild } from "../../lib/artifacts/kas";
import { defaultFileName, kasBuildArgv } from "../../lib/artifacts/isar-names";

const FIXTURES = path.resolve(__dirname, "../fixtures/kas");
let dir: string;
let tree: string;
const savedEnv = { ...process.env };

function readRecord(file: string): string[][] {
  const parts = fs.readFileSync(file, "utf8").split("\0");
  const calls: string[][] = [];
  let i = 0;
  while (i < parts.length - 1) {
    const n = Number(parts[i]);
    calls.push(parts.slice(i + 1, i + 1 + n));
    i += n + 1;
  }
  return calls;
}

beforeAll(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "kas-test-")));
  tree = path.join(dir, "isar");
  fs.cpSync(path.join(FIXTURES, "tree"), tree, { recursive: true });
  execFileSync("git", ["init", "-q", tree]);
  // make the environment the script sees predictable (it forwards TERM, SHELL and proxy variables)
  delete process.env.TERM;
  for (const v of ["http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "NO_PROXY"]) delete process.env[v];
  process.env.SHELL = "/bin/bash";
  process.env.DL_DIR = "/should/not/leak"; // inherited kas variables must not reach kas-container
});
afterAll(() => {
  process.env = savedEnv;
  fs.rmSync(dir, { recursive: true, force: true });
});

function request(name: string, over: Partial<KasBuildRequest> = {}): KasBuildRequest {
  return {
    settings: { kasDir: "isar", buildDir: `${name}/build`, dlDir: "cache/downloads", sstateDir: "cache/sstate", engine: "podman", timeoutSeconds: 120 },
    target: { machine: "jetson-orin-nano", image: "k3s-server", network: "simple" },
    projectDir: dir,
    allowRoot: true,
    searchPath: [FIXTURES],
    ...over,
  };
}

test("naming helpers agree with REFERENCE.md", () => {
  const m = { machine: "jetson-orin-nano", image: "isar-image-base", distro: "debian-trixie" };
  expect(defaultFileName(m, "wic")).toBe("isar-image-base-debian-trixie-jetson-orin-nano.wic");
  expect(defaultFileName(m, "rootfs")).toBe("isar-image-base-debian-trixie-jetson-orin-nano.tar.gz");
  expect(defaultFileName(m, "kernel", { arch: "arm64" })).toBe("isar-image-base-debian-trixie-jetson-orin-nano-vmlinux");
  expect(defaultFileName({ ...m, machine: "qemu-amd64" }, "kernel", { arch: "x86_64" })).toBe("isar-image-base-debian-trixie-qemu-amd64-vmlinuz");
  expect(defaultFileName(m, "initramfs")).toBe("isar-image-base-debian-trixie-jetson-orin-nano-initrd.img");
  expect(() => defaultFileName(m, "kernel")).toThrow(/pass arch/);
  expect(defaultFileName(m, "dtb", { fileName: "deploy/x+y.dtb" })).toBe("x+y.dtb");
  expect(kasBuildArgv({ machine: "qemu-amd64", image: "k3s-agent", network: "bonding-vlans" })).toEqual([
    "kas-container",
    "--isar",
    "build",
    "kas/base.yml:kas/machine/qemu-amd64.yml:kas/image/k3s-agent.yml:kas/network/bonding-vlans.yml",
  ]);
  expect(() => kasBuildArgv({ machine: "../etc", image: "k3s-agent", network: "simple" })).toThrow(/not a plain file name/);
});

test("environment comes from the settings only", () => {
  const c = kasCommand(request("env", { settings: { kasDir: "isar", engine: "docker", timeoutSeconds: 60 }, allowRoot: false }));
  expect(c.env.DL_DIR).toBeUndefined();
  expect(c.env.SSTATE_DIR).toBeUndefined();
  expect(c.env.KAS_ALLOW_ROOT).toBeUndefined();
  expect(c.kasEnv).toEqual({ KAS_WORK_DIR: tree, KAS_BUILD_DIR: path.join(tree, "build"), KAS_CONTAINER_ENGINE: "docker" });
  expect(c.cwd).toBe(tree);
  expect(c.timeoutSeconds).toBe(60);
});

test("a successful build: exact engine arguments, sudo in front, ISAR-named outputs found", async () => {
  const rec = path.join(dir, "ok.engine");
  const sudoRec = path.join(dir, "ok.sudo");
  process.env.FAKE_ENGINE_RECORD = rec;
  process.env.FAKE_SUDO_RECORD = sudoRec;
  process.env.FAKE_ENGINE_SEED = "s1";
  try {
    const r = await runKasBuild(request("ok"));
    const build = path.join(dir, "ok/build");
    const configs = "/repo/kas/base.yml:/repo/kas/machine/jetson-orin-nano.yml:/repo/kas/image/k3s-server.yml:/repo/kas/network/simple.yml";
    const expected = [
      "run",
      "-v",
      `${tree}:/repo:ro`,
      "-v",
      `${tree}:/work:rw`,
      "-e",
      "KAS_WORK_DIR=/work",
      "-v",
      `${build}:/build:rw`,
      "--workdir=/repo",
      "-e",
      "KAS_BUILD_DIR=/build",
      "-e",
      "USER_ID=0",
      "-e",
      "GROUP_ID=0",
      "--rm",
      "--init",
      "-v",
      `${path.join(dir, "cache/downloads")}:/downloads:rw`,
      "-e",
      "DL_DIR=/downloads",
      "-v",
      `${path.join(dir, "cache/sstate")}:/sstate:rw`,
      "-e",
      "SSTATE_DIR=/sstate",
      "-e",
      "SHELL=/bin/bash",
      "--privileged",
      "--security-opt",
      "label=disable",
      "ghcr.io/siemens/kas/kas-isar:3.1",
      "build",
      configs,
    ];
    expect(readRecord(rec)).toEqual([expected]);
    expect(readRecord(sudoRec)).toEqual([["--preserve-env", "podman", ...expected]]);

    expect(r.deployDir).toBe(path.join(build, "tmp/deploy/images/jetson-orin-nano"));
    const found = await findDeployOutputs(r.deployDir, { machine: "jetson-orin-nano", image: "isar-image-base", distro: "debian-trixie" }, { arch: "arm64" });
    const stem = path.join(r.deployDir, "isar-image-base-debian-trixie-jetson-orin-nano");
    expect(found).toMatchObject({ rootfs: `${stem}.tar.gz`, wic: `${stem}.wic`, kernel: `${stem}-vmlinux`, initramfs: `${stem}-initrd.img` });
    expect(found.dtbs).toEqual([path.join(r.deployDir, "tegra234-p3768-0000+p3767-0005-nv.dtb")]);
    expect(fs.readFileSync(found.rootfs!, "utf8")).toBe("fake isar-image-base-debian-trixie-jetson-orin-nano.tar.gz build s1\n");
    // wrong arch: the kernel is not guessed
    expect(
      (await findDeployOutputs(r.deployDir, { machine: "jetson-orin-nano", image: "isar-image-base", distro: "debian-trixie" }, { arch: "x86_64" })).kernel,
    ).toBeUndefined();
    // the full log is under the build dir
    expect(path.dirname(r.logPath)).toBe(path.join(build, "isar-k3s-logs"));
    const log = fs.readFileSync(r.logPath, "utf8");
    expect(log).toContain("NOTE: deployed isar-image-base-debian-trixie-jetson-orin-nano.wic");
    expect(log.split("\n")[0]).toContain("kas-container --isar build kas/base.yml:kas/machine/jetson-orin-nano.yml");
  } finally {
    delete process.env.FAKE_ENGINE_RECORD;
    delete process.env.FAKE_SUDO_RECORD;
  }
});

test("a failing build surfaces exit code, the last 40 log lines and the log path", async () => {
  process.env.FAKE_ENGINE_FAIL = "1";
  try {
    const err = (await runKasBuild(request("fail", { target: { machine: "qemu-amd64", image: "k3s-agent", network: "vlans" } })).catch(
      (e) => e,
    )) as KasBuildError;
    expect(err).toBeInstanceOf(KasBuildError);
    expect(err.exitCode).toBe(2);
    expect(err.timedOut).toBe(false);
    expect(err.tail).toHaveLength(40);
    expect(err.message).toMatch(/failed with exit code 2 \(kas: user error or bitbake failure\)/);
    expect(err.message).toContain("ERROR: Task (/repo/meta-isar-k3s/recipes-core/images/isar-image-base.bb:do_rootfs_install) failed with exit code '1'");
    expect(err.message).toContain("Summary: There were 3 ERROR messages, returning a non-zero exit code.");
    expect(err.message).toContain(`Full log: ${err.logPath}`);
    expect(err.message).not.toContain("do_fetch_1:"); // early lines are only in the full log
    const log = fs.readFileSync(err.logPath!, "utf8");
    expect(log).toContain("task do_fetch_1: Succeeded");
    expect(log).toContain("Summary: 1 task failed:");
    expect(fs.existsSync(path.join(dir, "fail/build/tmp/deploy/images/qemu-amd64"))).toBe(false);
  } finally {
    delete process.env.FAKE_ENGINE_FAIL;
  }
});

test("the build time limit kills the whole process group", async () => {
  process.env.FAKE_ENGINE_SLEEP = "60";
  const t0 = Date.now();
  try {
    const err = (await runKasBuild(request("slow", { settings: { ...request("slow").settings, timeoutSeconds: 1 }, killGraceMs: 2000 })).catch(
      (e) => e,
    )) as KasBuildError;
    expect(err).toBeInstanceOf(KasBuildError);
    expect(err.timedOut).toBe(true);
    expect(err.message).toMatch(/timed out after 1 s \(raise isar.timeoutSeconds/);
    expect(Date.now() - t0).toBeLessThan(15_000);
  } finally {
    delete process.env.FAKE_ENGINE_SLEEP;
  }
});

test("preflight catches what would make kas-container fail at once", () => {
  const noSudo = path.join(dir, "nosudo");
  fs.mkdirSync(noSudo);
  fs.symlinkSync(path.join(FIXTURES, "podman"), path.join(noSudo, "podman"));
  const problems = preflight(request("pre", { allowRoot: false, searchPath: [noSudo], target: { machine: "rk1", image: "k3s-server", network: "simple" } }));
  expect(problems.join("\n")).toMatch(/kas overlay kas\/machine\/rk1.yml not found/);
  expect(problems.join("\n")).toMatch(/running as root: .*allowRoot/);
  if (!fs.existsSync("/usr/bin/sudo")) expect(problems.join("\n")).toMatch(/sudo is not on PATH/);
  expect(preflight(request("pre2"))).toEqual([]);
});

test("without allowRoot the real kas-container refuses root, and our preflight says so first", async () => {
  const req = request("root", { allowRoot: false });
  const err = await runKasBuild(req).catch((e) => e);
  expect(err).toBeInstanceOf(KasBuildError);
  expect(err.message).toMatch(/cannot start .*running as root/s);
  // what the real script does with the same argv and environment: first, a build dir whose parent does
  // not exist makes its `readlink -f` fail under `set -e`: exit 1 without a word (runKasBuild creates it)
  const cmd = kasCommand(req);
  const silent = spawnSync(cmd.argv[0], cmd.argv.slice(1), { cwd: cmd.cwd, env: cmd.env, encoding: "utf8" });
  expect(silent.status).toBe(1);
  expect(silent.stdout + silent.stderr).toBe("");
  fs.mkdirSync(cmd.buildDir, { recursive: true });
  const r = spawnSync(cmd.argv[0], cmd.argv.slice(1), { cwd: cmd.cwd, env: cmd.env, encoding: "utf8" });
  expect(r.status).toBe(1);
  expect(r.stdout).toContain("Error: Running as root - may break certain recipes.");
});
