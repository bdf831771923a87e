/**
 * Lab command line: start / status / stop a simulated lab, set failure modes, power hosts.
 *
 *   node bin/lab/cli.js start  --dir .lab/dev --stack dev [--keys-dir dev/keys] [--fresh] [--json]
 *   node bin/lab/cli.js start  --dir DIR --spec spec.json [--fresh] [--json]
 *   node bin/lab/cli.js status --dir DIR [--json]
 *   node bin/lab/cli.js stop   --dir DIR
 *   node bin/lab/cli.js fault  --dir DIR flash-error [--slot N] [--message TEXT] | crc-mismatch [--slot N] | never-boot --node NAME
 *                                       | bmc-unreachable | no-sdcard
 *   node bin/lab/cli.js fault  --dir DIR clear [flash-error|crc-mismatch|never-boot|bmc-unreachable|no-sdcard]
 *   node bin/lab/cli.js power  --dir DIR on|off|reboot HOST
 * (from sources: node -r ./lab/ts-require.js lab/cli.ts ...)
 *
 * `start` runs the lab in a detached supervisor process (this file, `supervise`), waits (bounded, 60 s)
 * until every always-on host answers, prints the hosts and exits; the supervisor serves the other
 * commands on DIR/ctl.sock. `--stack NAME` reads Pulumi.NAME.yaml (the `isar-k3s:` keys), validates it
 * with parseFleet and simulates its BMCs and nodes at their addresses; host keys and the deploy key come
 * from --keys-dir (<host>_host_ed25519, deploy_ed25519) when present. `stop` is bounded too: if the
 * supervisor does not answer, its host processes are killed from the pids in DIR/lab.json.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { parseFleet, RawFleetConfig } from "../lib/model/parse";
import { Lab, LabFault, LabStatus, projectRoot, startLab } from "./lab";
import { LabSpec, labSpecFromFleet } from "./spec";

interface Args {
  cmd: string;
  pos: string[];
  opts: Record<string, string | true>;
}

function parseArgs(argv: string[]): Args {
  const opts: Record<string, string | true> = {};
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const k = a.slice(2);
      if (["fresh", "json"].includes(k)) opts[k] = true;
      else {
        if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
        opts[k] = argv[++i];
      }
    } else pos.push(a);
  }
  return { cmd: pos[0] ?? "help", pos: pos.slice(1), opts };
}

/** The lab spec of a Pulumi stack file (Pulumi.<stack>.yaml in `projectDir`). */
export function specFromStack(stack: string, projectDir: string, keysDir?: string): LabSpec {
  const YAML = require("yaml") as typeof import("yaml");
  const file = path.join(projectDir, `Pulumi.${stack}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`no stack file ${file}: pass --stack with an existing stack name, or --spec`);
  const doc = YAML.parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> };
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.config ?? {})) if (k.startsWith("isar-k3s:")) raw[k.slice("isar-k3s:".length)] = v;
  const fleet = parseFleet(raw as RawFleetConfig);
  const kd = keysDir ?? path.join(projectDir, "dev", "keys");
  const hostKeyFiles: Record<string, string> = {};
  for (const h of [...fleet.bmcs.map((b) => b.name), ...fleet.nodes.map((n) => n.name)]) {
    const f = path.join(kd, `${h}_host_ed25519`);
    if (fs.existsSync(f)) hostKeyFiles[h] = f;
  }
  const deploy = path.join(kd, "deploy_ed25519");
  return labSpecFromFleet(fleet, { hostKeyFiles, k3s: {}, ...(fs.existsSync(deploy) ? { deployKeyFile: deploy } : {}) });
}

function ctl(dir: string, route: string, body?: unknown, timeoutMs = 30_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path.join(dir, "ctl.sock"), path: route, method: "POST", timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        const v = text ? JSON.parse(text) : {};
        if (res.statusCode !== 200) reject(new Error((v as { error?: string }).error ?? text));
        else resolve(v);
      });
    });
    req.on("timeout", () => req.destroy(new Error(`lab supervisor in ${dir} did not answer within ${timeoutMs} ms`)));
    req.on("error", (e) => reject(new Error(`no running lab in ${dir} (${e.message}): start one with \`start --dir ${dir}\``)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

function printStatus(st: LabStatus, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(st, null, 2) + "\n");
    return;
  }
  process.stdout.write(`lab ${st.dir}\n`);
  for (const h of Object.values(st.hosts)) {
    const what = h.role === "bmc" ? "bmc" : h.tpi ? `tpi ${h.tpi.bmc} slot ${h.tpi.slot}` : "swupdate";
    process.stdout.write(
      `  ${h.name.padEnd(10)} ${`${h.user}@${h.address}:${h.port}`.padEnd(26)} ${(h.up ? "up" : h.powered ? "powered, not answering" : "off").padEnd(10)} ${what.padEnd(18)} ${h.hostKey ?? "(no host key yet)"}\n`,
    );
  }
  if (st.faults.length) process.stdout.write(`  faults: ${JSON.stringify(st.faults)}\n`);
}

async function waitForFile(f: string, ms: number, alive: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fs.existsSync(f)) return true;
    if (!alive()) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function main(argv: string[]): Promise<number> {
  const a = parseArgs(argv);
  const dir = a.opts.dir ? path.resolve(String(a.opts.dir)) : undefined;
  const needDir = () => {
    if (!dir) throw new Error(`${a.cmd} needs --dir <lab directory>`);
    return dir;
  };
  switch (a.cmd) {
    case "start": {
      const d = needDir();
      let spec: LabSpec;
      if (a.opts.stack) spec = specFromStack(String(a.opts.stack), process.cwd(), a.opts["keys-dir"] ? path.resolve(String(a.opts["keys-dir"])) : undefined);
      else if (a.opts.spec) spec = JSON.parse(fs.readFileSync(String(a.opts.spec), "utf8")) as LabSpec;
      else throw new Error("start needs --stack <name> or --spec <file.json>");
      if (fs.existsSync(path.join(d, "ctl.sock"))) {
        const st = await ctl(d, "/status", undefined, 3000).catch(() => undefined);
        if (st) throw new Error(`a lab is already running in ${d}: stop it first (\`stop --dir ${d}\`)`);
      }
      if (a.opts.fresh) fs.rmSync(d, { recursive: true, force: true });
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, "spec.json"), JSON.stringify(spec, null, 2));
      fs.rmSync(path.join(d, "ready"), { force: true });
      fs.rmSync(path.join(d, "failed"), { force: true });
      const log = fs.openSync(path.join(d, "supervisor.log"), "a");
      const self = __filename;
      const nodeArgs = self.endsWith(".ts") ? ["-r", path.join(projectRoot(), "lab", "ts-require.js"), self] : [self];
      const child = spawn(process.execPath, [...nodeArgs, "supervise", "--dir", d], { detached: true, stdio: ["ignore", log, log] });
      child.unref();
      let alive = true;
      child.once("exit", () => (alive = false));
      const ok = await waitForFile(path.join(d, "ready"), 60_000, () => alive && !fs.existsSync(path.join(d, "failed")));
      if (!ok) {
        const tail = fs.readFileSync(path.join(d, "supervisor.log"), "utf8").split("\n").slice(-30).join("\n");
        if (alive) process.kill(child.pid!, "SIGTERM");
        throw new Error(`lab did not start within 60 s:\n${tail}`);
      }
      printStatus((await ctl(d, "/status")) as LabStatus, a.opts.json === true);
      return 0;
    }
    case "supervise": {
      const d = needDir();
      const spec = JSON.parse(fs.readFileSync(path.join(d, "spec.json"), "utf8")) as LabSpec;
      let lab: Lab;
      try {
        lab = await startLab(spec, d);
      } catch (e) {
        fs.writeFileSync(path.join(d, "failed"), String((e as Error).message));
        console.error((e as Error).message);
        return 1;
      }
      const shutdown = () => void lab.stop().then(() => process.exit(0));
      process.on("SIGTERM", shutdown);
      process.on("SIGINT", shutdown);
      await lab.serveControl(() => setTimeout(() => process.exit(0), 50));
      fs.writeFileSync(path.join(d, "ready"), String(process.pid));
      console.error(`lab supervisor ${process.pid} serving ${d}`);
      return new Promise<number>(() => undefined); // runs until stopped
    }
    case "status": {
      const d = needDir();
      printStatus((await ctl(d, "/status")) as LabStatus, a.opts.json === true);
      return 0;
    }
    case "stop": {
      const d = needDir();
      try {
        await ctl(d, "/stop", undefined, 30_000);
      } catch (e) {
        // no supervisor: kill what lab.json says is left
        const f = path.join(d, "lab.json");
        if (!fs.existsSync(f)) throw e;
        const st = JSON.parse(fs.readFileSync(f, "utf8")) as LabStatus & { pid?: number };
        for (const h of Object.values(st.hosts))
          if (h.initPid)
            try {
              process.kill(h.initPid, "SIGKILL");
            } catch {
              /* gone */
            }
        if (st.pid)
          try {
            process.kill(st.pid, "SIGTERM");
          } catch {
            /* gone */
          }
      }
      const end = Date.now() + 10_000;
      while (fs.existsSync(path.join(d, "ctl.sock")) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
      fs.rmSync(path.join(d, "ready"), { force: true });
      process.stdout.write(`lab in ${d} stopped\n`);
      return 0;
    }
    case "fault": {
      const d = needDir();
      const kind = a.pos[0];
      let body: unknown;
      if (kind === "clear") body = { clear: a.pos[1] ?? true };
      else if (kind === "flash-error")
        body = { kind, ...(a.opts.slot ? { slot: Number(a.opts.slot) } : {}), ...(a.opts.message ? { message: String(a.opts.message) } : {}) } as LabFault;
      else if (kind === "never-boot") {
        if (!a.opts.node) throw new Error("fault never-boot needs --node <name>");
        body = { kind, node: String(a.opts.node) } as LabFault;
      } else if (kind === "crc-mismatch") body = { kind, ...(a.opts.slot ? { slot: Number(a.opts.slot) } : {}) } as LabFault;
      else if (kind === "bmc-unreachable" || kind === "no-sdcard") body = { kind } as LabFault;
      else throw new Error("fault: use flash-error | crc-mismatch | never-boot | bmc-unreachable | no-sdcard | clear");
      process.stdout.write(JSON.stringify(await ctl(d, "/fault", body)) + "\n");
      return 0;
    }
    case "power": {
      const d = needDir();
      const [action, host] = a.pos;
      if (!["on", "off", "reboot"].includes(action) || !host) throw new Error("power: use power on|off|reboot <host>");
      await ctl(d, "/power", { action, host }, 60_000);
      return 0;
    }
    default:
      process.stdout.write(
        fs
          .readFileSync(__filename, "utf8")
          .split("*/")[0]
          .replace(/^\/\*\*?/, "")
          .replace(/^ \* ?/gm, "") + "\n",
      );
      return a.cmd === "help" ? 0 : 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      process.stderr.write(`lab: ${e.message}\n`);
      process.exit(1);
    },
  );
}
