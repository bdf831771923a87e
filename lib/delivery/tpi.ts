/**
 * Turing Pi 2 delivery: put a node's disk image on its slot's eMMC through the BMC, over SSH.
 *
 * `flashNode` does, in order (each phase bounded by its own timeout; Pulumi's customTimeouts do not reach
 * dynamic providers):
 *   connect-bmc  SSH to the BMC with its pinned host key (retried for `connectTimeoutSeconds`);
 *   upload       the image to <imageDir>/isar-k3s-<node>-<imageId>.img (the transport skips it when the
 *                BMC already holds those bytes, resumes a partial copy, verifies sha256, renames atomically);
 *   flash        `tpi flash --local -n <slot> -i <path> --sha256 <hex>` (the BMC re-checks the bytes it
 *                writes; a tpi without --sha256 is retried without it). Success needs exit 0 AND "Done" on
 *                stdout AND no "Error occured during flashing" on stderr: tpi exits 0 on BMC-side failures;
 *   power-on     `tpi power on -n <slot>` (a flash leaves the module off);
 *   boot         wait until the node answers SSH (bootTimeoutSeconds). Without a pinned node key the key
 *                it presents now is accepted (we flashed it a moment ago) and returned for the state;
 *   verify       the node reports /etc/isar-k3s/image-id = the image id we flashed (and, when given, its
 *                /etc/hostname), else the flash "succeeded" onto the wrong slot or an old image booted.
 * Progress (phase, percent) goes to the given sink. Every failure is a DeliveryError naming node, slot,
 * BMC and phase, with the tail of tpi's output (and of the node's serial console when it did not boot).
 *
 * One flash at a time per BMC: the BMC daemon has a single transfer service, and a new flash request
 * cancels the one in progress (turing-machines/bmcd streaming_data_service.rs). Flashes through the same
 * BMC wait for each other in this process (the rollout order also chains them, see ./rollout.ts);
 * uploads to the BMC may overlap.
 *
 * Pure helpers (argv builders, output parsing) are exported for tests. Commands are argv arrays; the one
 * `sh -c` used has a fixed script and takes every value as a positional parameter.
 */
import * as fs from "fs";
import { connectSsh, SshConnectOptions, SshHost } from "../transport/ssh";
import { HostError, RunResult, tailLines } from "../transport/host";
import { normalizeSha256 } from "../transport/syntax";
import { SshCredentials, SshEndpoint, sshConnectOptions } from "../transport/endpoint";
import { DeliveryError, KeyedMutex, ProgressReporter, ProgressSink, asDeliveryError, readImageId, short, sleep } from "./common";

/** One flash at a time per BMC endpoint, in this process. */
export const bmcFlashLock = new KeyedMutex();

export interface BmcEndpointSpec extends SshEndpoint {
  name: string;
  /** Directory on the BMC for uploaded images (e.g. /mnt/sdcard/images). */
  imageDir: string;
}

export interface TpiFlashSpec {
  nodeName: string;
  /** Expected /etc/hostname of the booted node (checked when given). */
  hostname?: string;
  slot: number;
  bmc: BmcEndpointSpec;
  node: SshEndpoint;
  image: {
    /** Local disk image (NodeImage's disk.img). */
    path: string;
    /** Its sha256 (hex or SRI). */
    sha256: string;
    /** The id the image carries in /etc/isar-k3s/image-id. */
    imageId: string;
  };
  flashTimeoutSeconds: number;
  bootTimeoutSeconds: number;
  /** How long to keep retrying the BMC's SSH before giving up. Default 60. */
  connectTimeoutSeconds?: number;
  /** Pass --sha256 to tpi flash (retried without it when this tpi does not know the flag). Default true. */
  tpiSha256?: boolean;
  /** How often to poll tpi's progress, ms. Default 2000. */
  pollIntervalMs?: number;
}

/** How the deploy key is given (one declaration: lib/transport/endpoint.ts). */
export type Credentials = SshCredentials;

export interface FlashResult {
  /** The node's host key after our flash (to record and pin from now on). */
  nodeHostKey: string;
  /** The image id the node reported after boot. */
  runningImageId: string;
  remoteImagePath: string;
  uploadSkipped: boolean;
  uploadBytes: number;
  /** Whether tpi accepted --sha256. */
  sha256Checked: boolean;
}

export interface FlashOptions {
  progress?: ProgressSink;
  /** For tests: how SSH connections are made. */
  connect?: (o: SshConnectOptions) => Promise<SshHost>;
}

const IMAGE_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const NODE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** The BMC path the image of `spec` is uploaded to. */
export function remoteImagePath(spec: Pick<TpiFlashSpec, "nodeName" | "bmc" | "image">): string {
  if (!NODE_RE.test(spec.nodeName)) throw new Error(`node name ${JSON.stringify(spec.nodeName)} is not an RFC 1123 label`);
  if (!IMAGE_ID_RE.test(spec.image.imageId)) throw new Error(`image id ${JSON.stringify(spec.image.imageId)} of ${spec.nodeName} must be [A-Za-z0-9._-]`);
  const dir = spec.bmc.imageDir.replace(/\/+$/, "");
  if (!dir.startsWith("/")) throw new Error(`bmcs[${spec.bmc.name}].imageDir ${JSON.stringify(spec.bmc.imageDir)} must be an absolute path on the BMC`);
  return `${dir}/isar-k3s-${spec.nodeName}-${spec.image.imageId}.img`;
}

export function tpiFlashArgv(slot: number, imagePath: string, sha256?: string): string[] {
  checkSlot(slot);
  const argv = ["tpi", "flash", "--local", "-n", String(slot), "-i", imagePath];
  if (sha256 !== undefined) {
    const hex = normalizeSha256(sha256);
    if (!hex) throw new Error(`sha256 ${JSON.stringify(sha256)} is not a sha256`);
    argv.push("--sha256", hex);
  }
  return argv;
}

export function tpiPowerArgv(action: "on" | "off" | "reset" | "status", slot?: number): string[] {
  if (slot !== undefined) checkSlot(slot);
  return ["tpi", "power", action, ...(slot !== undefined ? ["-n", String(slot)] : [])];
}

export function tpiUartGetArgv(slot: number): string[] {
  checkSlot(slot);
  return ["tpi", "uart", "get", "-n", String(slot)];
}

function checkSlot(slot: number): void {
  if (![1, 2, 3, 4].includes(slot)) throw new Error(`slot ${slot} is not a Turing Pi 2 slot (1–4)`);
}

export type FlashOutcome =
  | { ok: true }
  | { ok: false; kind: "bmc-error" | "exit" | "no-done" | "sha256-unsupported"; message: string };

/**
 * Decide a `tpi flash` result from exit code AND output: tpi prints "Error occured during flashing: …"
 * on stderr and still exits 0 when the BMC fails; success ends with "Done".
 */
export function parseFlashOutcome(r: { code: number | null; stdout: string; stderr: string }): FlashOutcome {
  const err = r.stderr;
  const bmcErr = /Error occu?rr?ed during flashing[^\n]*/i.exec(err);
  if (bmcErr) return { ok: false, kind: "bmc-error", message: bmcErr[0].trim() };
  if (r.code !== 0) {
    if (r.code === 2 && /unexpected argument '--sha256'|unrecognized.*--sha256|Found argument '--sha256'/i.test(err)) {
      return { ok: false, kind: "sha256-unsupported", message: "this tpi does not know --sha256" };
    }
    const first = err.split("\n").find((l) => /error/i.test(l)) ?? err.split("\n").find((l) => l.trim()) ?? "";
    return { ok: false, kind: "exit", message: `tpi exited ${r.code === null ? "by a signal" : r.code}${first ? `: ${first.trim()}` : ""}` };
  }
  const lines = r.stdout.split("\n").map((l) => l.trim()).filter((l) => l);
  if (lines.length === 0 || !/^Done\b/i.test(lines[lines.length - 1])) {
    return { ok: false, kind: "no-done", message: `tpi exited 0 but did not report "Done" (last line: ${JSON.stringify(lines[lines.length - 1] ?? "")}): the outcome is unknown, treating it as a failure` };
  }
  return { ok: true };
}

/** The last percentage in a chunk of tpi output ("Writing: 40% (…)"), or undefined. */
export function lastPercent(text: string): number | undefined {
  const all = [...text.matchAll(/(\d{1,3}(?:\.\d+)?)\s?%/g)];
  if (all.length === 0) return undefined;
  const v = Number(all[all.length - 1][1]);
  return v >= 0 && v <= 100 ? v : undefined;
}

/** `tpi power status` → slot → on. Lines like "node1: On". */
export function parsePowerStatus(stdout: string): Record<number, boolean> {
  const out: Record<number, boolean> = {};
  for (const m of stdout.matchAll(/node\s*([1-4])\s*:\s*(on|off)/gi)) out[Number(m[1])] = m[2].toLowerCase() === "on";
  return out;
}

/** Prints "avail <KiB>", "final <bytes>", "partial <bytes>" for the image directory ($1) and image path ($2). */
export const SPACE_SCRIPT =
  'mkdir -p "$1" || exit 1; ' +
  'echo "avail $(df -Pk "$1" | tail -n 1 | awk \'{print $4}\')"; ' +
  'if [ -f "$2" ]; then echo "final $(wc -c < "$2")"; else echo "final -1"; fi; ' +
  'if [ -f "$2.partial" ]; then echo "partial $(wc -c < "$2.partial")"; else echo "partial 0"; fi';

/** Parse SPACE_SCRIPT's output. */
export function parseSpaceReport(out: string): { availableBytes: number; finalSize: number; partialSize: number } | undefined {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (-?\\d+)\\s*$`, "m").exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const avail = get("avail");
  const final = get("final");
  const partial = get("partial");
  if (avail === undefined || final === undefined || partial === undefined) return undefined;
  return { availableBytes: avail * 1024, finalSize: final, partialSize: partial };
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** Runs a command writing its stdout to a log file (polled for progress), then prints the log and exits with the command's status. */
export const LOGGED_RUN_SCRIPT = 'log=$1; shift; "$@" >"$log"; rc=$?; cat "$log"; rm -f "$log"; exit $rc';

function bmcWhere(spec: TpiFlashSpec, label?: string): string {
  return `BMC ${spec.bmc.name} slot ${spec.slot} (${label ?? `${spec.bmc.user}@${spec.bmc.address}:${spec.bmc.port}`})`;
}

function resultText(r: Partial<RunResult>): { stdout: string; stderr: string } {
  return { stdout: r.stdout?.toString("utf8") ?? "", stderr: r.stderr?.toString("utf8") ?? "" };
}

export async function connectBmc(spec: TpiFlashSpec, creds: Credentials, connect = connectSsh): Promise<SshHost> {
  try {
    return await connect(
      sshConnectOptions(spec.bmc, creds, {
        hostKeyConfigPath: `bmcs[${spec.bmc.name}].ssh.hostKey`,
        retryForMs: (spec.connectTimeoutSeconds ?? 60) * 1000,
        connectTimeoutMs: 15_000,
        operationTimeoutMs: 120_000,
      }),
    );
  } catch (e) {
    throw asDeliveryError(
      e,
      spec.nodeName,
      "connect-bmc",
      bmcWhere(spec),
      `check that BMC ${spec.bmc.name} is powered and reachable at ${spec.bmc.address}:${spec.bmc.port} (ssh ${spec.bmc.user}@${spec.bmc.address}), then run \`pulumi up\` again: nothing was changed on slot ${spec.slot}`,
    );
  }
}

/** The serial console's recent output of a slot (best effort, for error messages). */
async function uartTail(bmc: SshHost, slot: number): Promise<string> {
  try {
    const r = await bmc.run(tpiUartGetArgv(slot), { timeoutMs: 15_000 });
    return r.code === 0 ? tailLines(r.stdout, 20) : "";
  } catch {
    return "";
  }
}

/** Flash `spec.image` onto the slot, power it on, wait for it to boot and verify it. See the file contract. */
export async function flashNode(spec: TpiFlashSpec, creds: Credentials, opts: FlashOptions = {}): Promise<FlashResult> {
  const connect = opts.connect ?? connectSsh;
  const progress = new ProgressReporter(spec.nodeName, opts.progress ?? (() => undefined));
  const remote = remoteImagePath(spec);
  const sha = normalizeSha256(spec.image.sha256);
  if (!sha) throw new DeliveryError(spec.nodeName, "check", bmcWhere(spec), `image sha256 ${JSON.stringify(spec.image.sha256)} is not a sha256`);

  progress.report("connect-bmc", undefined, `${spec.bmc.name} ${spec.bmc.address}`);
  const bmc = await connectBmc(spec, creds, connect);
  const where = bmcWhere(spec, bmc.label);
  try {
    // room on the BMC (an unmounted SD card leaves the BMC's small root file system)
    try {
      const size = (await fs.promises.stat(spec.image.path)).size;
      const r = await bmc.run(["sh", "-c", SPACE_SCRIPT, "sh", remote.replace(/\/[^/]*$/, ""), remote], { timeoutMs: 60_000 });
      const space = parseSpaceReport(r.stdout.toString("utf8"));
      if (r.code === 0 && space) {
        const needed = space.finalSize === size ? 0 : size - space.partialSize;
        if (space.availableBytes < needed) {
          throw new DeliveryError(
            spec.nodeName,
            "upload",
            where,
            `${spec.bmc.imageDir} on the BMC has ${mib(space.availableBytes)} free, the image needs ${mib(needed)} more`,
            "",
            `mount the SD card at ${spec.bmc.imageDir.startsWith("/mnt/sdcard") ? "/mnt/sdcard" : "the image directory"} or remove old images there (ls -l ${spec.bmc.imageDir}), then run \`pulumi up\` again`,
          );
        }
      }
    } catch (e) {
      if (e instanceof DeliveryError) throw e;
      throw asDeliveryError(e, spec.nodeName, "upload", where, `check that the local image ${spec.image.path} exists (NodeImage disk.img)`);
    }

    // upload
    progress.report("upload", 0, `→ ${spec.bmc.name}:${remote}`);
    let up;
    try {
      up = await bmc.upload(spec.image.path, remote, {
        sha256: sha,
        mode: 0o644,
        onProgress: (sent, total) => progress.report("upload", total ? (100 * sent) / total : 100),
      });
    } catch (e) {
      throw asDeliveryError(e, spec.nodeName, "upload", where, `check free space in ${spec.bmc.imageDir} on the BMC (df -h) and that the local image ${spec.image.path} is readable; a re-run resumes the partial upload`);
    }
    progress.report("upload", 100, up.skipped ? "(already on the BMC, nothing sent)" : `(${up.bytes} bytes sent${up.resumedFrom ? `, resumed at ${up.resumedFrom}` : ""})`);

    // flash (one at a time per BMC)
    const flashDeadlineMs = spec.flashTimeoutSeconds * 1000;
    let useSha = spec.tpiSha256 ?? true;
    let outcome!: FlashOutcome;
    let out!: { stdout: string; stderr: string };
    const lockKey = `${spec.bmc.address}:${spec.bmc.port}`;
    if (bmcFlashLock.busy(lockKey)) progress.report("flash", undefined, `waiting: another flash through ${spec.bmc.name} is in progress`);
    await bmcFlashLock.run(lockKey, async () => {
      progress.report("flash", 0, `slot ${spec.slot} of ${spec.bmc.name}`);
      for (;;) {
        const logFile = `/tmp/isar-k3s-tpi-flash-slot${spec.slot}.log`;
        const argv = ["sh", "-c", LOGGED_RUN_SCRIPT, "sh", logFile, ...tpiFlashArgv(spec.slot, remote, useSha ? sha : undefined)];
        let done = false;
        const poller = (async () => {
          const every = spec.pollIntervalMs ?? 2000;
          while (!done) {
            await sleep(every);
            if (done) break;
            try {
              const r = await bmc.run(["tail", "-c", "400", logFile], { timeoutMs: 10_000 });
              const p = lastPercent(r.stdout.toString("utf8"));
              if (!done && p !== undefined) progress.report("flash", p);
            } catch {
              /* progress is best effort */
            }
          }
        })();
        let res: RunResult;
        try {
          res = await bmc.run(argv, { timeoutMs: flashDeadlineMs });
        } catch (e) {
          done = true;
          await poller;
          const timedOut = e instanceof HostError && /timed out/.test(e.message);
          throw asDeliveryError(
            e,
            spec.nodeName,
            "flash",
            where,
            timedOut
              ? `the flash took longer than delivery.flashTimeoutSeconds (${spec.flashTimeoutSeconds} s): raise it (flashing a module can take tens of minutes) and run \`pulumi up\` again; slot ${spec.slot} must be considered empty`
              : `the BMC connection broke during the flash; slot ${spec.slot} must be considered empty: run \`pulumi up\` again`,
          );
        } finally {
          done = true;
        }
        await poller;
        out = resultText(res);
        outcome = parseFlashOutcome({ code: res.code, ...out });
        if (!outcome.ok && outcome.kind === "sha256-unsupported" && useSha) {
          useSha = false; // older tpi: the transport already verified the uploaded bytes
          continue;
        }
        break;
      }
    });
    if (!outcome.ok) {
      throw new DeliveryError(
        spec.nodeName,
        "flash",
        where,
        outcome.message,
        `${out.stdout}${out.stderr ? `\n${out.stderr}` : ""}`,
        `the slot's eMMC holds a partial image now. Check the module is seated and the BMC's ${spec.bmc.imageDir} copy (sha256sum ${remote} should be ${sha}), then run \`pulumi up\` again`,
      );
    }
    progress.report("flash", 100, "Done");

    // power on
    progress.report("power-on", undefined, `tpi power on -n ${spec.slot}`);
    const pargv = tpiPowerArgv("on", spec.slot);
    let pres: RunResult;
    try {
      pres = await bmc.run(pargv, { timeoutMs: 60_000 });
    } catch (e) {
      throw asDeliveryError(e, spec.nodeName, "power-on", where, "the image is flashed; power the node on (`tpi power on -n " + spec.slot + "` on the BMC) or run `pulumi up` again");
    }
    const pout = resultText(pres);
    if (pres.code !== 0 || /error/i.test(pout.stderr)) {
      throw new DeliveryError(spec.nodeName, "power-on", where, `\`${pargv.join(" ")}\` exited ${pres.code}`, pout.stdout + pout.stderr, "the image is flashed; power the node on from the BMC and run `pulumi up` again");
    }

    // boot: wait for SSH
    progress.report("boot", undefined, `waiting for ${spec.node.user}@${spec.node.address}:${spec.node.port} (up to ${spec.bootTimeoutSeconds} s)`);
    let node: SshHost;
    try {
      node = await connect(
        sshConnectOptions(spec.node, creds, {
          hostKeyConfigPath: `nodes[${spec.nodeName}].ssh.hostKey`,
          acceptNewHostKey: spec.node.hostKey === undefined, // only now: we just flashed this node
          retryForMs: spec.bootTimeoutSeconds * 1000,
          retryInitialDelayMs: 500,
          connectTimeoutMs: 10_000,
          operationTimeoutMs: 60_000,
        }),
      );
    } catch (e) {
      const name = (e as Error).name;
      if (name === "HostKeyMismatchError" || name === "UnknownHostKeyError" || name === "SshAuthError") {
        // the node is up, but is not the one we expect to talk to, or does not take our key
        throw new DeliveryError(
          spec.nodeName,
          "boot",
          `${spec.node.user}@${spec.node.address}:${spec.node.port} (${spec.bmc.name} slot ${spec.slot})`,
          `the node answers SSH but the connection was refused: ${(e as Error).message}`,
          "",
          name === "SshAuthError"
            ? "the image must carry the deploy public key (authorizedKeys) for the node's SSH user"
            : `nodes[${spec.nodeName}].ssh.hostKey pins a key the flashed image does not have: remove the pin (the key is learned right after the flash) or bake that key into the image`,
        );
      }
      const uart = await uartTail(bmc, spec.slot);
      throw new DeliveryError(
        spec.nodeName,
        "boot",
        `${spec.node.user}@${spec.node.address}:${spec.node.port} (${spec.bmc.name} slot ${spec.slot})`,
        `the node did not answer SSH within delivery.bootTimeoutSeconds (${spec.bootTimeoutSeconds} s) after power-on: ${(e as Error).message}`,
        uart ? `serial console (tpi uart get -n ${spec.slot}):\n${uart}` : "",
        `look at the serial console (\`tpi uart get -n ${spec.slot}\` on the BMC), check the node's address ${spec.node.address} and that the image is for this module; then run \`pulumi up\` again (it reflashes)`,
      );
    }
    try {
      progress.report("verify");
      const nodeWhere = `${node.label} (${spec.bmc.name} slot ${spec.slot})`;
      let running: string | undefined;
      let hostname: string | undefined;
      try {
        running = await readImageId(node);
        if (spec.hostname !== undefined) hostname = (await node.readFile("/etc/hostname", { timeoutMs: 30_000 })).toString("utf8").split("\n")[0].trim();
      } catch (e) {
        throw asDeliveryError(e, spec.nodeName, "verify", nodeWhere);
      }
      if (running !== spec.image.imageId) {
        throw new DeliveryError(
          spec.nodeName,
          "verify",
          nodeWhere,
          `the node booted but reports image id ${running ?? "(no /etc/isar-k3s/image-id)"}, not the flashed ${spec.image.imageId}`,
          "",
          `check that node ${spec.nodeName} really sits in slot ${spec.slot} of ${spec.bmc.name} and that its address ${spec.node.address} is right (another board may answer there)`,
        );
      }
      if (spec.hostname !== undefined && hostname !== spec.hostname) {
        throw new DeliveryError(spec.nodeName, "verify", nodeWhere, `the node reports hostname ${JSON.stringify(hostname)}, expected ${JSON.stringify(spec.hostname)}`, "", `check nodes[${spec.nodeName}].address: another board answers there`);
      }
      const key = node.hostKeySeen;
      if (!key) throw new DeliveryError(spec.nodeName, "verify", nodeWhere, "the SSH connection recorded no host key");
      progress.report("done", 100, `image ${short(running)} on ${spec.bmc.name} slot ${spec.slot}`);
      return { nodeHostKey: key, runningImageId: running, remoteImagePath: remote, uploadSkipped: up.skipped, uploadBytes: up.bytes, sha256Checked: useSha };
    } finally {
      await node.close();
    }
  } finally {
    await bmc.close();
  }
}

export interface ProbeResult {
  reachable: boolean;
  runningImageId?: string;
  /** The node presented another host key than the recorded one: re-installed outside this program. */
  hostKeyChanged?: boolean;
  error?: string;
}

/** Refresh: what does the node run now? Never throws; connects with the recorded host key only. */
export async function probeNode(
  nodeName: string,
  node: SshEndpoint,
  creds: Credentials,
  opts: { timeoutSeconds?: number; connect?: (o: SshConnectOptions) => Promise<SshHost> } = {},
): Promise<ProbeResult> {
  const connect = opts.connect ?? connectSsh;
  if (!node.hostKey) return { reachable: false, error: `${nodeName}: no host key recorded, cannot check the node safely` };
  let h: SshHost | undefined;
  try {
    h = await connect(sshConnectOptions(node, creds, { retryForMs: (opts.timeoutSeconds ?? 20) * 1000, connectTimeoutMs: 10_000, operationTimeoutMs: 30_000 }));
    return { reachable: true, runningImageId: await readImageId(h) };
  } catch (e) {
    const name = (e as Error).name;
    if (name === "HostKeyMismatchError") return { reachable: true, hostKeyChanged: true, error: (e as Error).message };
    return { reachable: false, error: (e as Error).message };
  } finally {
    await h?.close();
  }
}

/** Delete: power the slot off and remove this node's uploaded image from the BMC. */
export async function unflashNode(spec: TpiFlashSpec, creds: Credentials, opts: FlashOptions = {}): Promise<void> {
  const bmc = await connectBmc(spec, creds, opts.connect ?? connectSsh);
  try {
    const argv = tpiPowerArgv("off", spec.slot);
    const r = await bmc.run(argv, { timeoutMs: 60_000 });
    if (r.code !== 0) {
      const o = resultText(r);
      throw new DeliveryError(spec.nodeName, "delete", bmcWhere(spec, bmc.label), `\`${argv.join(" ")}\` exited ${r.code}`, o.stdout + o.stderr, "power the slot off by hand, or drop the resource from the state with `pulumi state delete <urn>`");
    }
    await bmc.run(["rm", "-f", "--", remoteImagePath(spec), remoteImagePath(spec) + ".partial"], { timeoutMs: 60_000 });
  } finally {
    await bmc.close();
  }
}
