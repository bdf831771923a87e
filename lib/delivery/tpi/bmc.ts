/**
 * The BMC side of a Turing Pi flash: where an image lands on the BMC, the SSH connection to the BMC,
 * the serial console tail, and running `tpi flash` with its progress polled from a log file.
 *
 * Commands are argv arrays; the one `sh -c` used (LOGGED_RUN_SCRIPT) has a fixed script and takes every
 * value as a positional parameter.
 */
import { isRfc1123Label } from "../../model/checks";
import { SshCredentials, SshEndpoint, endpointLabel, sshConnectOptions } from "../../transport/endpoint";
import { HostError, RunResult, tailLines } from "../../transport/host";
import { connectSsh, SshHost } from "../../transport/ssh";
import { setTimeout as sleep } from "timers/promises";
import { asDeliveryError } from "../common/errors";
import { ProgressReporter } from "../common/progress";
import { bmcFlashLock } from "../common/lock";
import { FlashOutcome, lastPercent, parseFlashOutcome, tpiFlashArgv, tpiUartGetArgv } from "./protocol";

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

const IMAGE_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;

/** The BMC path the image of `spec` is uploaded to. */
export function remoteImagePath(spec: Pick<TpiFlashSpec, "nodeName" | "bmc" | "image">): string {
  if (!isRfc1123Label(spec.nodeName)) throw new Error(`node name ${JSON.stringify(spec.nodeName)} is not an RFC 1123 label`);
  if (!IMAGE_ID_RE.test(spec.image.imageId)) throw new Error(`image id ${JSON.stringify(spec.image.imageId)} of ${spec.nodeName} must be [A-Za-z0-9._-]`);
  const dir = spec.bmc.imageDir.replace(/\/+$/, "");
  if (!dir.startsWith("/")) throw new Error(`bmcs[${spec.bmc.name}].imageDir ${JSON.stringify(spec.bmc.imageDir)} must be an absolute path on the BMC`);
  return `${dir}/isar-k3s-${spec.nodeName}-${spec.image.imageId}.img`;
}

/** Runs a command writing its stdout to a log file (polled for progress), then prints the log and exits with the command's status. */
export const LOGGED_RUN_SCRIPT = 'log=$1; shift; "$@" >"$log"; rc=$?; cat "$log"; rm -f "$log"; exit $rc';

/** "BMC bmc slot 2 (root@10.0.0.2:22)", for messages. */
export function bmcWhere(spec: TpiFlashSpec, label?: string): string {
  return `BMC ${spec.bmc.name} slot ${spec.slot} (${label ?? endpointLabel(spec.bmc)})`;
}

export function resultText(r: Partial<RunResult>): { stdout: string; stderr: string } {
  return { stdout: r.stdout?.toString("utf8") ?? "", stderr: r.stderr?.toString("utf8") ?? "" };
}

export async function connectBmc(spec: TpiFlashSpec, creds: SshCredentials, connect = connectSsh): Promise<SshHost> {
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
export async function uartTail(bmc: SshHost, slot: number): Promise<string> {
  try {
    const r = await bmc.run(tpiUartGetArgv(slot), { timeoutMs: 15_000 });
    return r.code === 0 ? tailLines(r.stdout, 20) : "";
  } catch {
    return "";
  }
}

export interface TpiFlashRun {
  outcome: FlashOutcome;
  out: { stdout: string; stderr: string };
  /** Whether tpi accepted --sha256. */
  sha256Checked: boolean;
}

/**
 * Run `tpi flash` for `remote` on the slot, one flash at a time per BMC, polling the log for progress.
 * A tpi without --sha256 is retried without it. Throws a DeliveryError when the run itself breaks
 * (timeout, lost connection); the outcome of a finished run is returned for the caller to judge.
 */
export async function runTpiFlash(
  bmc: SshHost,
  spec: TpiFlashSpec,
  remote: string,
  sha: string,
  where: string,
  progress: ProgressReporter,
): Promise<TpiFlashRun> {
  let useSha = spec.tpiSha256 ?? true;
  const lockKey = `${spec.bmc.address}:${spec.bmc.port}`;
  if (bmcFlashLock.busy(lockKey)) progress.report("flash", undefined, `waiting: another flash through ${spec.bmc.name} is in progress`);
  return bmcFlashLock.run(lockKey, async () => {
    progress.report("flash", 0, `slot ${spec.slot} of ${spec.bmc.name}`);
    for (;;) {
      const logFile = `/tmp/isar-k3s-tpi-flash-slot${spec.slot}.log`;
      const argv = ["sh", "-c", LOGGED_RUN_SCRIPT, "sh", logFile, ...tpiFlashArgv(spec.slot, remote, useSha ? sha : undefined)];
      const res = await runPolled(bmc, argv, logFile, spec, where, progress);
      const out = resultText(res);
      const outcome = parseFlashOutcome({ code: res.code, ...out });
      if (!outcome.ok && outcome.kind === "sha256-unsupported" && useSha) {
        useSha = false; // older tpi: the transport already verified the uploaded bytes
        continue;
      }
      return { outcome, out, sha256Checked: useSha };
    }
  });
}

/** One `tpi flash` run with its log polled for progress every `pollIntervalMs`. */
async function runPolled(bmc: SshHost, argv: string[], logFile: string, spec: TpiFlashSpec, where: string, progress: ProgressReporter): Promise<RunResult> {
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
  try {
    return await bmc.run(argv, { timeoutMs: spec.flashTimeoutSeconds * 1000 });
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
    await poller;
  }
}
