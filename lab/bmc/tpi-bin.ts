/**
 * Where the lab finds the real `tpi` CLI it puts on its BMCs: built by scripts/tpi.sh (crates.io,
 * `--features localhost`, cached under ~/.cache/isar-k3s/tpi/<version>/). No stand-in exists.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const TPI_VERSION = "1.0.7";

/** The tpi binary: $ISAR_K3S_TPI, else the path scripts/setup.sh recorded in <project>/.tpi-bin, else the cache. */
export function findTpi(projectRoot: string): string {
  const tried: string[] = [];
  const candidates = [
    process.env.ISAR_K3S_TPI,
    (() => {
      try {
        return fs.readFileSync(path.join(projectRoot, ".tpi-bin"), "utf8").trim() || undefined;
      } catch {
        return undefined;
      }
    })(),
    path.join(process.env.ISAR_K3S_CACHE ?? path.join(os.homedir(), ".cache", "isar-k3s"), "tpi", TPI_VERSION, "bin", "tpi"),
  ];
  for (const c of candidates) {
    if (!c) continue;
    tried.push(c);
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  throw new Error(
    `lab: the real tpi ${TPI_VERSION} is not built (looked at ${tried.join(", ")}): run \`bash scripts/setup.sh\` (or \`bash scripts/tpi.sh\`), or set ISAR_K3S_TPI to a tpi built with --features localhost`,
  );
}
