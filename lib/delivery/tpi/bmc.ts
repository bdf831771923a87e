/**
 * The BMC side of a Turing Pi flash: where an image lands on the BMC, the SSH connection to the BMC,
 * the serial console tail, the check of the image's copy on the BMC against the pin, and running
 * `tpi flash` with its progress polled from the BMC API's flash status.
 *
 * Commands are argv arrays; the one `sh -c` used (FLASH_STATUS_SCRIPT) is a fixed script without values.
 */
import * as fs from "fs";
import { isRfc1123Label } from "../../model/checks";
import { SshCredentials, SshEndpoint, endpointLabel, sshConnectOptions } from "../../transport/endpoint";
import { HostError, RunResult, tailLines } from "../../transport/host";
import { connectSsh, SshHost } from "../../transport/ssh";
import { setTimeout as sleep } from "timers/promises";
import { asDeliveryError } from "../common/errors";
import { ProgressReporter } from "../common/progress";
import { bmcFlashLock } from "../common/lock";
import { DeliveryError, short } from "../common/errors";
import { FlashOutcome, FlashWatcher, flashStatusArgv, outputTails, parseFlashOutcome, parseFlashStatus, tpiFlashArgv, tpiUartGetArgv } from "./protocol";

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
  /** How often to poll the BMC API's flash status for progress, ms. Default 2000. */
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

/**
 * sha256 of the image file as it lies on the BMC's SD card, computed on the BMC, against the pin, right
 * before the flash (`tpi flash --local` sends the BMC no checksum). An upload that was skipped has just
 * done exactly this (the transport hashed the BMC's file and found the pin); after a transfer the file is
 * read back and hashed here. On a mismatch the file is removed (the next run uploads it again) and a
 * DeliveryError says what was found; the slot is not touched.
 */
export async function checkImageOnBmc(
  bmc: SshHost,
  spec: TpiFlashSpec,
  remote: string,
  sha: string,
  uploadSkipped: boolean,
  where: string,
  progress: ProgressReporter,
): Promise<void> {
  if (uploadSkipped) {
    progress.report("check-image", 100, `${remote} on ${spec.bmc.name} has the pinned sha256 ${short(sha)} (hashed on the BMC just now)`);
    return;
  }
  progress.report("check-image", undefined, `sha256 of ${remote} on ${spec.bmc.name}`);
  const size = (await fs.promises.stat(spec.image.path)).size;
  let got: string | undefined;
  try {
    // the BMC hashes at tens of MB/s: allow 2 MB/s, at least two minutes
    got = await bmc.sha256(remote, { timeoutMs: Math.max(120_000, size / 2e3) });
  } catch (e) {
    throw asDeliveryError(
      e,
      spec.nodeName,
      "check-image",
      where,
      `check that the SD card is mounted and ${remote} is readable on the BMC (sha256sum ${remote}), then run \`pulumi up\` again; slot ${spec.slot} was not touched`,
    );
  }
  if (got !== sha) {
    await bmc.run(["rm", "-f", "--", remote], { timeoutMs: 60_000 }).catch(() => undefined);
    throw new DeliveryError(
      spec.nodeName,
      "check-image",
      where,
      `the image on the BMC (${remote}) has sha256 ${got ?? "(file missing)"}, not the pinned ${sha}: the copy on the SD card is damaged or was replaced; it was removed and slot ${spec.slot} was not touched`,
      "",
      "run `pulumi up` again to upload it anew; if this repeats, check the BMC's SD card (dmesg on the BMC, or replace the card)",
    );
  }
  progress.report("check-image", 100, `sha256 ${short(got)} matches the pin`);
}

/** Poll the BMC API's flash status until `stopped()`: progress per stage, and the transfer's handle. */
async function watchFlash(bmc: SshHost, spec: TpiFlashSpec, progress: ProgressReporter, watcher: FlashWatcher, stopped: () => boolean): Promise<void> {
  const every = spec.pollIntervalMs ?? 2000;
  let warned = false;
  for (let first = true; !stopped(); first = false) {
    // the BMC starts writing as soon as tpi's request lands: look early once, then every `every` ms
    await sleep(first ? Math.min(every, 300) : every);
    if (stopped()) break;
    try {
      const r = await bmc.run(flashStatusArgv(), { timeoutMs: 15_000 });
      const st = r.code === 0 ? parseFlashStatus(r.stdout.toString("utf8")) : undefined;
      if (!st && !warned) {
        warned = true;
        progress.report("flash", undefined, `(no progress: the BMC's flash status is not readable: ${tailLines(r.stderr, 1) || `curl exit ${r.code}`})`);
      }
      const p = watcher.observe(st);
      if (!stopped() && p)
        progress.report(
          p.stage === "writing" ? "flash" : "flash-check",
          p.percent,
          p.stage === "writing" ? `writing slot ${spec.slot}` : `the BMC reads slot ${spec.slot} back (crc)`,
        );
    } catch {
      /* progress is best effort */
    }
  }
}

/**
 * `tpi flash --local` for `remote` on the slot, one flash at a time per BMC, with the BMC API's status
 * polled for progress. Throws a DeliveryError unless tpi reports Done AND the transfer stayed ours.
 */
export async function runTpiFlash(bmc: SshHost, spec: TpiFlashSpec, remote: string, sha: string, where: string, progress: ProgressReporter): Promise<void> {
  const lockKey = `${spec.bmc.address}:${spec.bmc.port}`;
  if (bmcFlashLock.busy(lockKey)) progress.report("flash", undefined, `waiting: another flash through ${spec.bmc.name} is in progress`);
  const { outcome, out } = await bmcFlashLock.run(lockKey, async () => {
    progress.report("flash", 0, `slot ${spec.slot} of ${spec.bmc.name}`);
    const watcher = new FlashWatcher();
    const res = await runPolled(bmc, tpiFlashArgv(spec.slot, remote), spec, where, progress, watcher);
    const out = resultText(res);
    let outcome: FlashOutcome = parseFlashOutcome({ code: res.code, ...out });
    if (outcome.ok && watcher.foreignHandle !== undefined) {
      outcome = {
        ok: false,
        kind: "replaced",
        message: `another flash (BMC transfer ${watcher.foreignHandle}) replaced ours (${watcher.handle}) while it ran, yet tpi printed "Done": the BMC runs one transfer at a time`,
      };
    }
    return { outcome, out };
  });
  if (!outcome.ok) {
    throw new DeliveryError(
      spec.nodeName,
      "flash",
      where,
      outcome.message,
      outputTails(out),
      outcome.kind === "replaced"
        ? `something else flashed through ${spec.bmc.name} at the same time (another \`pulumi up\`, or tpi/the web UI by hand): wait for it to end, then run \`pulumi up\` again; slot ${spec.slot} must be considered empty`
        : `the slot's eMMC holds a partial image now. Check the module is seated, then run \`pulumi up\` again (the BMC's copy ${remote} matched sha256 ${short(sha)} before this flash)`,
    );
  }
}

/** One `tpi flash` run with the BMC's flash status polled every `pollIntervalMs`. */
async function runPolled(
  bmc: SshHost,
  argv: string[],
  spec: TpiFlashSpec,
  where: string,
  progress: ProgressReporter,
  watcher: FlashWatcher,
): Promise<RunResult> {
  let done = false;
  const poller = watchFlash(bmc, spec, progress, watcher, () => done);
  try {
    return await bmc.run(argv, { timeoutMs: spec.flashTimeoutSeconds * 1000 });
  } catch (e) {
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
