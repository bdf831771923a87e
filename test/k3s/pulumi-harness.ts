/**
 * Shared by the engine-level suites (pulumi.e2e, leave.e2e): where the Pulumi CLI, the language host
 * and the dynamic-provider plugin are (PULUMI_BIN_DIR, the clone's .pulumi-bin-dir, or the toolchain
 * cache of scripts/pulumi-toolchain.sh, newest version first). Undefined when none is installed.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import { promisify } from "util";

const execP = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");

export function findPulumiBin(): string | undefined {
  const cands: string[] = [];
  if (process.env.PULUMI_BIN_DIR) cands.push(process.env.PULUMI_BIN_DIR);
  const pinned = path.join(ROOT, ".pulumi-bin-dir");
  if (fs.existsSync(pinned)) cands.push(fs.readFileSync(pinned, "utf8").trim());
  const cache = path.join(process.env.ISAR_K3S_CACHE ?? path.join(os.homedir(), ".cache/isar-k3s"), "pulumi");
  if (fs.existsSync(cache))
    for (const v of fs
      .readdirSync(cache)
      .filter((d) => /^v\d/.test(d))
      .sort()
      .reverse())
      cands.push(path.join(cache, v, "bin"));
  return cands.find((d) => ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"].every((b) => fs.existsSync(path.join(d, b))));
}

/** Compile the given entry files (and what they import) to `outDir` as CommonJS, for a test program to require. */
export function compileForProgram(outDir: string, entries: string[]): Promise<unknown> {
  return execP(process.execPath, [
    path.join(ROOT, "node_modules/typescript/bin/tsc"),
    ...[
      "--strict",
      "--outDir",
      outDir,
      "--rootDir",
      ROOT,
      "--module",
      "commonjs",
      "--target",
      "ES2022",
      "--esModuleInterop",
      "--skipLibCheck",
      "--types",
      "node",
    ],
    ...entries.map((e) => path.join(ROOT, e)),
  ]);
}

export interface PulumiProject {
  project: string;
  env: NodeJS.ProcessEnv;
  /** Run the CLI on the project (non-interactive); a failure carries the tail of its output. */
  run(args: string[], input?: string): Promise<{ stdout: string; stderr: string }>;
  /** `stack init <stack>`, then each plain and each secret (from stdin) config value. */
  init(stack: string, plain: Record<string, string>, secret: Record<string, string>): Promise<void>;
}

/**
 * A Pulumi project in `dir`/project running `program` (index.js) with the clone's node_modules, a file
 * backend in `dir`/state and a passphrase secrets provider; `env` is added to the CLI's environment.
 */
export function pulumiProject(pulumiBin: string, dir: string, name: string, program: string, env: Record<string, string>): PulumiProject {
  const project = path.join(dir, "project");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "Pulumi.yaml"), `name: ${name}\nruntime: nodejs\nmain: index.js\n`);
  fs.writeFileSync(path.join(project, "package.json"), `{"name":"${name}","private":true}\n`);
  fs.writeFileSync(path.join(project, "index.js"), program);
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
  fs.mkdirSync(path.join(dir, "state"));
  const fullEnv: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${pulumiBin}:${path.join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
    PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: `${name}-passphrase`,
    PULUMI_HOME: path.join(dir, "home"),
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
    NODE_PATH: path.join(ROOT, "node_modules"),
    ...env,
  };
  const run = async (args: string[], input?: string) => {
    const p = execP(path.join(pulumiBin, "pulumi"), [...args, "--non-interactive", "--cwd", project], { env: fullEnv, maxBuffer: 64 << 20 });
    if (input !== undefined) p.child.stdin!.end(input);
    try {
      return await p;
    } catch (e) {
      const err = e as Error & { stdout?: string; stderr?: string };
      throw new Error(`pulumi ${args[0]} failed: ${err.message}\n${(err.stdout ?? "").split("\n").slice(-400).join("\n")}\n${err.stderr ?? ""}`, { cause: e });
    }
  };
  const init = async (stack: string, plain: Record<string, string>, secret: Record<string, string>) => {
    await run(["stack", "init", stack]);
    for (const [k, v] of Object.entries(plain)) await run(["config", "set", k, v]);
    for (const [k, v] of Object.entries(secret)) await run(["config", "set", "--secret", k], v);
  };
  return { project, env: fullEnv, run, init };
}
