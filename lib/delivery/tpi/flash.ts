/**
 * Turing Pi 2 delivery: put a node's disk image on its slot's eMMC through the BMC, over SSH.
 *
 * `flashNode` does, in order (each phase bounded by its own timeout; Pulumi's customTimeouts do not reach
 * dynamic providers):
 *   connect-bmc  SSH to the BMC with its pinned host key (retried for `connectTimeoutSeconds`);
 *   upload       the image to <imageDir>/isar-k3s-<node>-<imageId>.img (the transport skips it when the
 *                BMC already holds those bytes, resumes a partial copy, verifies sha256, renames atomically);
 *   check-image  the sha256 of that file, computed ON THE BMC (read back from the SD card), against the
 *                pin, right before flashing: `tpi flash --local` sends the BMC no checksum (tpi drops
 *                --sha256 there and the firmware takes none for local files), so this is the check that
 *                the bytes on the SD card are the pinned image (a skipped upload has just hashed the file
 *                on the BMC and counts). A mismatch removes the file (the next run uploads it again);
 *   flash        `tpi flash --local -n <slot> -i <path>`. The BMC writes the module, reads it back and
 *                compares crc (always, for local files). Success needs exit 0 AND "Done" on stdout AND no
 *                "Error occured during flashing" on stderr (tpi exits 0 on BMC-side failures) AND our
 *                transfer not replaced by another client's. Progress comes from the BMC API's flash
 *                status (bytes written, then the read-back), polled over the same SSH connection;
 *   power-on     `tpi power on -n <slot>` (a flash leaves the module off);
 *   boot         wait until the node answers SSH (bootTimeoutSeconds). Without a pinned node key the key
 *                it presents now is accepted (we flashed it a moment ago) and returned for the state;
 *   verify       the node reports /etc/isar-k3s/image-id = the image id we flashed (and, when given, its
 *                /etc/hostname), else the flash "succeeded" onto the wrong slot or an old image booted.
 * Progress (phase, percent, elapsed time; at least every 10 %) goes to the given sink. Every failure is a
 * DeliveryError naming node, slot, BMC and phase, with the last lines of tpi's stdout AND stderr (and of
 * the node's serial console when it did not boot).
 *
 * One flash at a time per BMC (../common/lock.ts): flashes through the same BMC wait for each other in
 * this process (the rollout order also chains them, see ../rollout.ts); uploads to the BMC may overlap.
 */
import { SshCredentials, endpointLabel, sshConnectOptions } from "../../transport/endpoint";
import { RunResult } from "../../transport/host";
import { normalizeSha256 } from "../../transport/syntax";
import { connectSsh, SshHost } from "../../transport/ssh";
import { DeliveryError, asDeliveryError, short } from "../common/errors";
import { ProgressReporter, ProgressSink } from "../common/progress";
import { ensureRoom } from "../common/space";
import { Connect, readImageId } from "../common/node";
import { bmcWhere, checkImageOnBmc, connectBmc, remoteImagePath, resultText, runTpiFlash, TpiFlashSpec, uartTail } from "./bmc";
import { outputTails, tpiPowerArgv } from "./protocol";

export interface FlashResult {
  /** The node's host key after our flash (to record and pin from now on). */
  nodeHostKey: string;
  /** The image id the node reported after boot. */
  runningImageId: string;
  remoteImagePath: string;
  uploadSkipped: boolean;
  uploadBytes: number;
  /** The image file on the BMC was hashed and matched the pinned sha256 right before the flash (always true on success: the flash does not start otherwise). */
  sha256Checked: boolean;
}

export interface FlashOptions {
  progress?: ProgressSink;
  /** For tests: how SSH connections are made. */
  connect?: Connect;
}

/** Flash `spec.image` onto the slot, power it on, wait for it to boot and verify it. See the file contract. */
export async function flashNode(spec: TpiFlashSpec, creds: SshCredentials, opts: FlashOptions = {}): Promise<FlashResult> {
  const connect = opts.connect ?? connectSsh;
  const progress = new ProgressReporter(spec.nodeName, opts.progress ?? (() => undefined));
  const remote = remoteImagePath(spec);
  const sha = normalizeSha256(spec.image.sha256);
  if (!sha) throw new DeliveryError(spec.nodeName, "check", bmcWhere(spec), `image sha256 ${JSON.stringify(spec.image.sha256)} is not a sha256`);

  progress.report("connect-bmc", undefined, `${spec.bmc.name} ${spec.bmc.address}`);
  const bmc = await connectBmc(spec, creds, connect);
  const where = bmcWhere(spec, bmc.label);
  try {
    const up = await uploadImage(bmc, spec, remote, sha, where, progress);
    await checkImageOnBmc(bmc, spec, remote, sha, up.skipped, where, progress);
    await runTpiFlash(bmc, spec, remote, sha, where, progress);
    progress.report("flash", 100, "Done");
    await powerOn(bmc, spec, where, progress);
    const node = await waitForBoot(bmc, spec, creds, connect, progress);
    try {
      const v = await verifyFlashed(node, spec, progress);
      return { ...v, remoteImagePath: remote, uploadSkipped: up.skipped, uploadBytes: up.bytes, sha256Checked: true };
    } finally {
      await node.close();
    }
  } finally {
    await bmc.close();
  }
}

/** Room on the BMC (an unmounted SD card leaves the BMC's small root file system), then the upload. */
async function uploadImage(bmc: SshHost, spec: TpiFlashSpec, remote: string, sha: string, where: string, progress: ProgressReporter) {
  await ensureRoom(bmc, {
    node: spec.nodeName,
    where,
    localPath: spec.image.path,
    dir: remote.replace(/\/[^/]*$/, ""),
    remotePath: remote,
    short: (free, needed) => ({
      reason: `${spec.bmc.imageDir} on the BMC has ${free} free, the image needs ${needed} more`,
      hint: `mount the SD card at ${spec.bmc.imageDir.startsWith("/mnt/sdcard") ? "/mnt/sdcard" : "the image directory"} or remove old images there (ls -l ${spec.bmc.imageDir}), then run \`pulumi up\` again`,
    }),
    failureHint: `check that the local image ${spec.image.path} exists (NodeImage disk.img)`,
  });
  progress.report("upload", 0, `→ ${spec.bmc.name}:${remote}`);
  let up;
  try {
    up = await bmc.upload(spec.image.path, remote, {
      sha256: sha,
      mode: 0o644,
      onProgress: (sent, total) => progress.report("upload", total ? (100 * sent) / total : 100),
    });
  } catch (e) {
    throw asDeliveryError(
      e,
      spec.nodeName,
      "upload",
      where,
      `check free space in ${spec.bmc.imageDir} on the BMC (df -h) and that the local image ${spec.image.path} is readable; a re-run resumes the partial upload`,
    );
  }
  progress.report(
    "upload",
    100,
    up.skipped ? "(already on the BMC, nothing sent)" : `(${up.bytes} bytes sent${up.resumedFrom ? `, resumed at ${up.resumedFrom}` : ""})`,
  );
  return up;
}

async function powerOn(bmc: SshHost, spec: TpiFlashSpec, where: string, progress: ProgressReporter): Promise<void> {
  progress.report("power-on", undefined, `tpi power on -n ${spec.slot}`);
  const pargv = tpiPowerArgv("on", spec.slot);
  let pres: RunResult;
  try {
    pres = await bmc.run(pargv, { timeoutMs: 60_000 });
  } catch (e) {
    throw asDeliveryError(
      e,
      spec.nodeName,
      "power-on",
      where,
      "the image is flashed; power the node on (`tpi power on -n " + spec.slot + "` on the BMC) or run `pulumi up` again",
    );
  }
  const pout = resultText(pres);
  if (pres.code !== 0 || /error/i.test(pout.stderr)) {
    throw new DeliveryError(
      spec.nodeName,
      "power-on",
      where,
      `\`${pargv.join(" ")}\` exited ${pres.code}`,
      outputTails(pout),
      "the image is flashed; power the node on from the BMC and run `pulumi up` again",
    );
  }
}

/** Wait for the freshly flashed node to answer SSH; a refused login and a silent node are told apart. */
async function waitForBoot(bmc: SshHost, spec: TpiFlashSpec, creds: SshCredentials, connect: Connect, progress: ProgressReporter): Promise<SshHost> {
  progress.report("boot", undefined, `waiting for ${endpointLabel(spec.node)} (up to ${spec.bootTimeoutSeconds} s)`);
  const nodeWhere = `${endpointLabel(spec.node)} (${spec.bmc.name} slot ${spec.slot})`;
  try {
    return await connect(
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
        nodeWhere,
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
      nodeWhere,
      `the node did not answer SSH within delivery.bootTimeoutSeconds (${spec.bootTimeoutSeconds} s) after power-on: ${(e as Error).message}`,
      uart ? `serial console (tpi uart get -n ${spec.slot}):\n${uart}` : "",
      `look at the serial console (\`tpi uart get -n ${spec.slot}\` on the BMC), check the node's address ${spec.node.address} and that the image is for this module; then run \`pulumi up\` again (it reflashes)`,
    );
  }
}

/** The booted node must report the flashed image id (and hostname, when given); its host key is recorded. */
async function verifyFlashed(node: SshHost, spec: TpiFlashSpec, progress: ProgressReporter): Promise<{ nodeHostKey: string; runningImageId: string }> {
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
    throw new DeliveryError(
      spec.nodeName,
      "verify",
      nodeWhere,
      `the node reports hostname ${JSON.stringify(hostname)}, expected ${JSON.stringify(spec.hostname)}`,
      "",
      `check nodes[${spec.nodeName}].address: another board answers there`,
    );
  }
  const key = node.hostKeySeen;
  if (!key) throw new DeliveryError(spec.nodeName, "verify", nodeWhere, "the SSH connection recorded no host key");
  progress.report("done", 100, `image ${short(running)} on ${spec.bmc.name} slot ${spec.slot}`);
  return { nodeHostKey: key, runningImageId: running };
}

/** Delete: power the slot off and remove this node's uploaded image from the BMC. */
export async function unflashNode(spec: TpiFlashSpec, creds: SshCredentials, opts: FlashOptions = {}): Promise<void> {
  const bmc = await connectBmc(spec, creds, opts.connect ?? connectSsh);
  try {
    const argv = tpiPowerArgv("off", spec.slot);
    const r = await bmc.run(argv, { timeoutMs: 60_000 });
    if (r.code !== 0) {
      const o = resultText(r);
      throw new DeliveryError(
        spec.nodeName,
        "delete",
        bmcWhere(spec, bmc.label),
        `\`${argv.join(" ")}\` exited ${r.code}`,
        outputTails(o),
        "power the slot off by hand, or drop the resource from the state with `pulumi state delete <urn>`",
      );
    }
    await bmc.run(["rm", "-f", "--", remoteImagePath(spec), remoteImagePath(spec) + ".partial"], { timeoutMs: 60_000 });
  } finally {
    await bmc.close();
  }
}
