/**
 * `npm run pin -- --stack <stack> [--machine M]... [--deploy-dir D] [--version V] [--dry-run] [--no-store]
 * [--no-cache] [--project-dir P]`: after an ISAR build, hash the deploy outputs, add them to the Nix store
 * and write the new sha256 pins into Pulumi.<stack>.yaml, printing `old → new` per file
 * (lib/artifacts/pin-update.ts does the work).
 *
 * Exit codes: 0 done (or nothing to do), 1 a file was missing / could not be stored (nothing written),
 * 2 usage error. The hash cache lives in $XDG_CACHE_HOME/isar-k3s/hash-cache.json (~/.cache/...).
 */
import * as os from "os";
import * as path from "path";
import { HashCache } from "../lib/artifacts/hash";
import { formatReport, updatePins } from "../lib/artifacts/pin-update";

const USAGE = `usage: npm run pin -- --stack <stack> [options]
  --stack S         stack whose Pulumi.S.yaml holds the pins (required)
  --machine M       only this artifacts entry (hardware key or ISAR machine); repeatable
  --deploy-dir D    take files from D/<machine>/ (or D/) instead of the pins' paths, and point the pins there
  --version V       set the entries' ISAR version label
  --dry-run         show what would change; write nothing, add nothing to the store
  --no-store        do not add the files to the Nix store
  --no-cache        hash every file even if unchanged since the last run
  --project-dir P   project directory (default: the current directory)`;

export interface PinArgs {
  stack: string;
  machines: string[];
  deployDir?: string;
  version?: string;
  dryRun: boolean;
  store: boolean;
  cache: boolean;
  projectDir: string;
}

export function parseArgs(argv: string[]): PinArgs | string {
  const a: PinArgs = { stack: "", machines: [], dryRun: false, store: true, cache: true, projectDir: process.cwd() };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${k} needs a value`);
      return v;
    };
    try {
      switch (k) {
        case "--stack":
          a.stack = val();
          break;
        case "--machine":
          a.machines.push(val());
          break;
        case "--deploy-dir":
          a.deployDir = val();
          break;
        case "--version":
          a.version = val();
          break;
        case "--project-dir":
          a.projectDir = path.resolve(val());
          break;
        case "--dry-run":
          a.dryRun = true;
          break;
        case "--no-store":
          a.store = false;
          break;
        case "--no-cache":
          a.cache = false;
          break;
        case "-h":
        case "--help":
          return USAGE;
        default:
          return `unknown argument ${JSON.stringify(k)}\n${USAGE}`;
      }
    } catch (e) {
      return `${(e as Error).message}\n${USAGE}`;
    }
  }
  if (!a.stack) return `--stack is required\n${USAGE}`;
  if (!/^[A-Za-z0-9._-]+$/.test(a.stack)) return `--stack ${JSON.stringify(a.stack)} is not a stack name`;
  return a;
}

export async function main(argv: string[]): Promise<number> {
  const a = parseArgs(argv);
  if (typeof a === "string") {
    console.error(a);
    return a === USAGE ? 0 : 2;
  }
  const cacheDir = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  const r = await updatePins({
    stack: a.stack,
    projectDir: a.projectDir,
    machines: a.machines,
    deployDir: a.deployDir,
    version: a.version,
    dryRun: a.dryRun,
    addToStore: a.store,
    cache: new HashCache(a.cache ? path.join(cacheDir, "isar-k3s", "hash-cache.json") : undefined),
  });
  console.log(formatReport(r));
  return r.problems.length > 0 ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`pin: ${(e as Error).stack ?? e}`);
      process.exit(1);
    },
  );
}
