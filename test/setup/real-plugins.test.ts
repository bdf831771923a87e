/**
 * The toolchain's real plugins under `pulumi up`, without the lab: the Go-built CLI, the upstream
 * Node.js language host and the random and command plugins installed by scripts/pulumi-plugins.sh
 * (automatic plugin download off). A RandomPassword feeds a command.local.Command; the password is
 * ciphertext in the state and absent from the normal output, and a second preview changes nothing.
 * Needs the toolchain (`bash scripts/setup.sh`).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.resolve(__dirname, "..", "..");
const binDirFile = path.join(ROOT, ".pulumi-bin-dir");
const BIN = fs.existsSync(binDirFile) ? fs.readFileSync(binDirFile, "utf8").trim() : "";
const ready = BIN !== "" && fs.existsSync(path.join(BIN, "pulumi")) && fs.existsSync(path.join(BIN, "pulumi-language-nodejs"));
if (!ready) console.warn("real-plugins: no Pulumi toolchain (run bash scripts/setup.sh); skipped");

const SECRET_SIG = { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" };
let dir: string;
let env: NodeJS.ProcessEnv;

function pulumi(args: string[]): string {
  const r = spawnSync("pulumi", [...args, "--non-interactive"], { cwd: path.join(dir, "project"), env, encoding: "utf8", timeout: 10 * 60_000 });
  const out = r.stdout + r.stderr;
  if (r.status !== 0) throw new Error(`pulumi ${args.join(" ")} exited ${r.status}:\n${out}`);
  return out;
}

beforeAll(() => {
  if (!ready) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "isar-k3s-plugins-up-"));
  const project = path.join(dir, "project");
  fs.mkdirSync(project);
  fs.mkdirSync(path.join(dir, "state"));
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
  const deps = Object.fromEntries(["@pulumi/pulumi", "@pulumi/random", "@pulumi/command"].map((d) => [d, pkg.dependencies[d]]));
  fs.writeFileSync(path.join(project, "Pulumi.yaml"), "name: plugins-up\nruntime:\n  name: nodejs\n  options:\n    typescript: false\nmain: index.js\n");
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "plugins-up", private: true, dependencies: deps }));
  fs.writeFileSync(
    path.join(project, "index.js"),
    `const random = require("@pulumi/random");
const command = require("@pulumi/command");
const pw = new random.RandomPassword("pw", { length: 40, special: false });
const cmd = new command.local.Command("use-pw", { create: 'printf %s "$PW" | wc -c', environment: { PW: pw.result } });
exports.length = cmd.stdout;
exports.pw = pw.result;
`,
  );
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
  env = {
    ...process.env,
    PATH: `${BIN}:${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
    PULUMI_HOME: path.join(dir, "home"),
    PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: "plugins-up",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
  };
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

(ready ? test : test.skip)(
  "RandomPassword → command.local.Command under pulumi up with the installed plugins",
  () => {
    const inst = spawnSync("bash", [path.join(ROOT, "scripts", "pulumi-plugins.sh")], { cwd: ROOT, env, encoding: "utf8" });
    expect(inst.status).toBe(0);
    pulumi(["stack", "init", "t"]);
    const up = pulumi(["up", "--yes", "--diff"]);
    expect(up).not.toMatch(/using pulumi-language-nodejs from \$PATH/); // the host next to the CLI is used
    const outputs = JSON.parse(pulumi(["stack", "output", "--json", "--show-secrets"])) as { length: string; pw: string };
    expect(outputs.pw).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(outputs.length.trim()).toBe("40"); // the command got the password through its environment
    expect(up).not.toContain(outputs.pw);
    const state = pulumi(["stack", "export"]);
    expect(state).not.toContain(outputs.pw);
    const resources = (
      JSON.parse(state) as { deployment: { resources: { type: string; outputs?: Record<string, unknown>; inputs?: Record<string, unknown> }[] } }
    ).deployment.resources;
    const pw = resources.find((r) => r.type === "random:index/randomPassword:RandomPassword")!;
    expect(pw.outputs!.result).toEqual({ ...SECRET_SIG, ciphertext: expect.stringMatching(/^v1:/) });
    // the provider resources run the plugin versions package.json pins
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const name of ["random", "command"]) {
      const prov = resources.find((r) => r.type === `pulumi:providers:${name}`)!;
      expect(prov.inputs!.version).toBe(pkg.dependencies[`@pulumi/${name}`]);
    }
    const preview = pulumi(["preview", "--expect-no-changes"]);
    expect(preview).toMatch(/3 unchanged/);
  },
  15 * 60_000,
);
