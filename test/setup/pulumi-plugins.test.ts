/**
 * scripts/pulumi-toolchain.sh and scripts/pulumi-plugins.sh without the upstream sources (a user's
 * clone): what is missing is named with the command that installs it; a plugin built into the cache is
 * installed into PULUMI_HOME with the real `pulumi plugin install` (when the Go-built CLI is there),
 * once: a second run changes nothing.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
const V = { kubernetes: pkg.dependencies["@pulumi/kubernetes"], random: pkg.dependencies["@pulumi/random"], command: pkg.dependencies["@pulumi/command"] };

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "isar-k3s-plugins-"));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(script: string, args: string[], env: Record<string, string>) {
  const r = spawnSync("bash", [path.join(ROOT, "scripts", script), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, PATH: `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, ...env },
  });
  return { code: r.status, out: r.stdout + r.stderr };
}

test("--print-plugins lists package.json's exact versions, '-' for a plugin with no build in the cache", () => {
  const r = run("pulumi-toolchain.sh", ["--print-plugins"], { ISAR_K3S_CACHE: tmp });
  expect(r.code).toBe(0);
  expect(r.out.trim().split("\n")).toEqual([`kubernetes ${V.kubernetes} -`, `random ${V.random} -`, `command ${V.command} -`]);
});

test("no upstream sources: the toolchain names the missing plugin and the commands that install it (exit 3)", () => {
  const env = { ISAR_K3S_CACHE: tmp, ISAR_K3S_PULUMI_UPSTREAM: path.join(tmp, "no-upstream") };
  const r = run("pulumi-toolchain.sh", ["--only", "command"], env);
  expect(r.code).toBe(3);
  expect(r.out).toContain(`pulumi-resource-command ${V.command}: its sources are not at ${path.join(tmp, "no-upstream")}/pulumi-command-v${V.command}`);
  expect(r.out).toContain(`pulumi plugin install resource command ${V.command}\n`);
  expect(r.out).toContain(`pulumi plugin install resource command ${V.command} -f /path/to/pulumi-resource-command`);
  const l = run("pulumi-toolchain.sh", ["--only", "langhost"], env);
  expect(l.code).toBe(3);
  expect(l.out).toMatch(/pulumi-language-nodejs: its sources are not at .*pulumi-language-nodejs-v3\.259\.0[\s\S]*ISAR_K3S_USE_SYSTEM_PULUMI=1/);
});

test("pulumi-plugins.sh --check: each plugin neither built nor installed is named with how to install it", () => {
  const home = path.join(tmp, "home");
  const r = run("pulumi-plugins.sh", ["--check"], { ISAR_K3S_CACHE: tmp, PULUMI_HOME: home });
  expect(r.code).toBe(1);
  for (const [name, v] of Object.entries(V)) {
    expect(r.out).toContain(`resource plugin ${name} ${v} (asked for by @pulumi/${name} ${v} in package.json) is not\n  installed in ${home}`);
    expect(r.out).toContain(`pulumi plugin install resource ${name} ${v} -f /path/to/pulumi-resource-${name}`);
  }
});

const binDirFile = path.join(ROOT, ".pulumi-bin-dir");
const cli = fs.existsSync(binDirFile) ? path.join(fs.readFileSync(binDirFile, "utf8").trim(), "pulumi") : "";
(fs.existsSync(cli) ? test : test.skip)("a plugin in the cache is installed with `pulumi plugin install`, once", () => {
  // A stand-in binary in the cache layout the toolchain builds into; installing only copies it.
  const exeDir = path.join(tmp, "pulumi", "providers", "random", `v${V.random}`, "bin");
  fs.mkdirSync(exeDir, { recursive: true });
  fs.writeFileSync(path.join(exeDir, "pulumi-resource-random"), "#!/bin/sh\necho stand-in\n", { mode: 0o755 });
  const home = path.join(tmp, "home");
  const env = { ISAR_K3S_CACHE: tmp, PULUMI_HOME: home, PULUMI_SKIP_UPDATE_CHECK: "true" };
  const first = run("pulumi-plugins.sh", [], env);
  expect(first.out).toContain(`installed resource plugin random ${V.random} into ${home}`);
  expect(first.code).toBe(1); // kubernetes and command are still missing, and named
  expect(first.out).toMatch(/resource plugin kubernetes .* is not/);
  const installed = path.join(home, "plugins", `resource-random-v${V.random}`, "pulumi-resource-random");
  expect(fs.readFileSync(installed, "utf8")).toContain("stand-in");
  const ls = spawnSync(cli, ["plugin", "ls", "--json"], { encoding: "utf8", env: { ...process.env, ...env } });
  const plugins = JSON.parse(ls.stdout) as { name: string; kind: string; version: string }[];
  expect(plugins.filter((p) => p.name === "random").map((p) => [p.kind, p.version])).toEqual([["resource", V.random]]);
  // second run: nothing to do for random
  const mtime = fs.statSync(installed).mtimeMs;
  const second = run("pulumi-plugins.sh", [], env);
  expect(second.out).not.toContain("installed resource plugin random");
  expect(fs.statSync(installed).mtimeMs).toBe(mtime);
});
