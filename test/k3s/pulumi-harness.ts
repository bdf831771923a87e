/**
 * Shared by the engine-level suites (pulumi.e2e, leave.e2e): where the Pulumi CLI, the language host
 * and the dynamic-provider plugin are (PULUMI_BIN_DIR, the clone's .pulumi-bin-dir, or the toolchain
 * cache of scripts/pulumi-toolchain.sh, newest version first). Undefined when none is installed.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

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
