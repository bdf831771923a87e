/**
 * SWUpdate delivery over SSH: install a node's signed .swu with the node's own swupdate, reboot, verify.
 *
 * `installBundle` does, in order (each phase bounded by its own timeout):
 *   connect   SSH to the node with its pinned host key (never accepts an unknown key: we did not flash it);
 *             when the node already reports the target image id, nothing is done (idempotent re-run);
 *   upload    refused up front when <remoteDir> has no room for it; then the .swu to <remoteDir>/<file> (skip / resume / verify / atomic rename by the transport),
 *             the signing certificate (public) next to it when given as text, the AES key (a secret)
 *             through stdin into a 0600 file that is removed in `finally`;
 *   install   `swupdate -v -k <cert> -H <hardware>:<rev> [-e <selection>] [-K <aes>] -i <file>`.
 *             Success = exit 0, or Debian 2022.12's known exit race (exit ≠ 0 after "SWUPDATE successful"
 *             with no [ERROR] line). A refused bundle (bad signature, hash, hardware) throws a
 *             DeliveryError with the tail of swupdate's log; SWUpdate checks the signature before
 *             writing, so the node keeps its old image, and the caller's state stays old;
 *   reboot    `reboot` (argv configurable); the connection dropping is expected;
 *   boot      reconnect until the node's boot marker (boot_id + start of process 1) has changed, within
 *             bootTimeoutSeconds;
 *   verify    /etc/isar-k3s/image-id = the expected image id, else the node booted its old image
 *             (bootloader fallback) and that is an error.
 * The uploaded bundle is removed from the node after the install attempt. Refresh is ../common/node.ts probeImageId.
 */
import { setTimeout as sleep } from "timers/promises";
import { connectSsh, SshHost } from "../../transport/ssh";
import { HostError, RunResult, tailLines } from "../../transport/host";
import { normalizeSha256 } from "../../transport/syntax";
import { SshCredentials, SshEndpoint, endpointLabel, sshConnectOptions } from "../../transport/endpoint";
import { DELIVERY_DEFAULTS } from "../../model/defaults";
import { DeliveryError, asDeliveryError, short } from "../common/errors";
import { ProgressReporter, ProgressSink } from "../common/progress";
import { ensureRoom } from "../common/space";
import { bootMarker, Connect, readImageId } from "../common/node";

export interface SwupdateSpec {
  nodeName: string;
  node: SshEndpoint;
  /** Board name (the bundle's hardware) and revision, for `-H <hardware>:<rev>`. */
  hardware: string;
  hwRevision: string;
  /** SWUpdate selection "set,mode" for A/B layouts. */
  selection?: string;
  bundle: { path: string; sha256: string };
  /** Image id the node must report after the update. */
  imageId: string;
  /** PEM certificate text to upload; without it `certPath` must already exist on the node. */
  certificate?: string;
  /** Certificate path on the node. Default <remoteDir>/swupdate-cert.pem when `certificate` is given, else /etc/swupdate/swupdate.pem. */
  certPath?: string;
  /** `--cert-purpose` (codeSigning for certificates without emailProtection). */
  certPurpose?: "emailProtection" | "codeSigning";
  /** Directory on the node for the uploaded bundle. Default /var/tmp/isar-k3s. */
  remoteDir?: string;
  installTimeoutSeconds?: number;
  bootTimeoutSeconds: number;
  connectTimeoutSeconds?: number;
  /** Reboot command. Default ["reboot"]. */
  rebootArgv?: string[];
}

export interface SwupdateSecrets extends SshCredentials {
  /** SWUpdate AES key file text "<hexkey> <hexiv>" for encrypted bundles. */
  aesKey?: string;
}

export interface InstallResult {
  runningImageId: string;
  /** True when the node already ran the image: nothing was installed. */
  alreadyCurrent: boolean;
  uploadSkipped: boolean;
  /** Tail of swupdate's log (when it ran). */
  logTail: string;
}

export interface InstallOptions {
  progress?: ProgressSink;
  /** For tests: how SSH connections are made. */
  connect?: Connect;
}

const HW_RE = /^[A-Za-z0-9._+-]+$/;
const SELECTION_RE = /^[A-Za-z0-9_-]+,[A-Za-z0-9_-]+$/;

/** The swupdate argv (pure). */
export function swupdateArgv(o: {
  certPath: string;
  hardware: string;
  hwRevision: string;
  selection?: string;
  aesKeyPath?: string;
  certPurpose?: string;
  bundlePath: string;
}): string[] {
  if (!HW_RE.test(o.hardware) || !HW_RE.test(o.hwRevision))
    throw new Error(`hardware ${JSON.stringify(o.hardware)} / revision ${JSON.stringify(o.hwRevision)} must be [A-Za-z0-9._+-]`);
  if (o.selection !== undefined && !SELECTION_RE.test(o.selection)) throw new Error(`selection ${JSON.stringify(o.selection)} must look like "stable,main"`);
  const argv = ["swupdate", "-v", "-k", o.certPath];
  if (o.certPurpose) argv.push("--cert-purpose", o.certPurpose);
  argv.push("-H", `${o.hardware}:${o.hwRevision}`);
  if (o.selection) argv.push("-e", o.selection);
  if (o.aesKeyPath) argv.push("-K", o.aesKeyPath);
  argv.push("-i", o.bundlePath);
  return argv;
}

export type InstallOutcome = { ok: true; raced: boolean } | { ok: false; message: string };

/** Decide an install from swupdate's exit code and log (see the file contract). */
export function parseInstallOutcome(r: { code: number | null; output: string }): InstallOutcome {
  const errors = r.output.split("\n").filter((l) => /\[ERROR\]/.test(l));
  const successful = /SWUPDATE successful/.test(r.output);
  if (r.code === 0 && errors.length === 0) return { ok: true, raced: false };
  if (r.code !== 0 && successful && errors.length === 0) return { ok: true, raced: true };
  // the first errors carry the cause ("Authentication of all signatures failed"); later ones are consequences
  const msgs = [...new Set(errors.map((l) => l.replace(/^.*\[ERROR\]\s*:?\s*(SWUPDATE failed \[\d+\]\s*)?(ERROR\s*:?\s*)?/, "").trim()))];
  const why = msgs.length ? msgs.slice(0, 3).join("; ") : `swupdate exited ${r.code}`;
  return { ok: false, message: `swupdate refused the bundle: ${why}` };
}

function where(spec: SwupdateSpec, label?: string): string {
  return label ?? endpointLabel(spec.node);
}

async function connectNode(spec: SwupdateSpec, creds: SshCredentials, connect: Connect, retryForMs: number, phase: "connect" | "boot"): Promise<SshHost> {
  if (!spec.node.hostKey) {
    throw new DeliveryError(
      spec.nodeName,
      "connect",
      where(spec),
      "no host key is pinned for this node, and SWUpdate nodes are not flashed by this program, so an unknown key cannot be trusted",
      "",
      `set nodes[${spec.nodeName}].ssh.hostKey to the node's public host key (check it on the console: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)`,
    );
  }
  try {
    return await connect(
      sshConnectOptions(spec.node, creds, {
        hostKeyConfigPath: `nodes[${spec.nodeName}].ssh.hostKey`,
        retryForMs,
        retryInitialDelayMs: 300,
        connectTimeoutMs: 10_000,
        operationTimeoutMs: 120_000,
      }),
    );
  } catch (e) {
    throw asDeliveryError(
      e,
      spec.nodeName,
      phase,
      where(spec),
      phase === "connect" ? `check that ${spec.nodeName} is up at ${spec.node.address}:${spec.node.port}; nothing was changed on it` : "",
    );
  }
}

function text(r: Partial<RunResult>): string {
  return `${r.stdout?.toString("utf8") ?? ""}${r.stderr?.length ? "\n" + r.stderr.toString("utf8") : ""}`;
}

/** One install's settings, worked out once: where the bundle and the certificate go on the node. */
interface InstallRun {
  spec: SwupdateSpec;
  secrets: SwupdateSecrets;
  progress: ProgressReporter;
  connect: Connect;
  /** The bundle's sha256 (lowercase hex). */
  sha: string;
  dir: string;
  remoteBundle: string;
  certPath: string;
}

function prepareInstall(spec: SwupdateSpec, secrets: SwupdateSecrets, opts: InstallOptions): InstallRun {
  const sha = normalizeSha256(spec.bundle.sha256);
  if (!sha) throw new DeliveryError(spec.nodeName, "check", where(spec), `bundle sha256 ${JSON.stringify(spec.bundle.sha256)} is not a sha256`);
  const dir = (spec.remoteDir ?? DELIVERY_DEFAULTS.swupdateRemoteDir).replace(/\/+$/, "");
  const base = spec.bundle.path.split("/").pop()!;
  if (!/^[A-Za-z0-9._+-]+$/.test(base))
    throw new DeliveryError(spec.nodeName, "check", where(spec), `bundle file name ${JSON.stringify(base)} must be [A-Za-z0-9._+-]`);
  return {
    spec,
    secrets,
    progress: new ProgressReporter(spec.nodeName, opts.progress ?? (() => undefined)),
    connect: opts.connect ?? connectSsh,
    sha,
    dir,
    remoteBundle: `${dir}/${base}`,
    certPath: spec.certPath ?? (spec.certificate !== undefined ? `${dir}/swupdate-cert.pem` : "/etc/swupdate/swupdate.pem"),
  };
}

/** Install the bundle on the node, reboot, verify. See the file contract. */
export async function installBundle(spec: SwupdateSpec, secrets: SwupdateSecrets, opts: InstallOptions = {}): Promise<InstallResult> {
  const run = prepareInstall(spec, secrets, opts);
  run.progress.report("connect", undefined, `${spec.node.address}:${spec.node.port}`);
  const node = await connectNode(spec, secrets, run.connect, (spec.connectTimeoutSeconds ?? DELIVERY_DEFAULTS.connectTimeoutSeconds) * 1000, "connect");
  const w = where(spec, node.label);
  let marker: string;
  let logTail: string;
  let uploadSkipped: boolean;
  try {
    let current: string | undefined;
    try {
      current = await readImageId(node);
      marker = await bootMarker(node);
    } catch (e) {
      throw asDeliveryError(e, spec.nodeName, "connect", w);
    }
    if (current === spec.imageId) {
      run.progress.report("skip", undefined, `already runs image ${short(current)}`);
      return { runningImageId: current, alreadyCurrent: true, uploadSkipped: true, logTail: "" };
    }
    uploadSkipped = await uploadBundle(node, run, w);
    logTail = await runSwupdate(node, run, w, current);
    await rebootNode(node, run, w);
  } finally {
    await node.close();
  }
  const running = await waitForNewBoot(run, marker, logTail);
  return { runningImageId: running, alreadyCurrent: false, uploadSkipped, logTail };
}

/** Room for the bundle, then the bundle (and the certificate when given as text). Returns whether the upload was skipped. */
async function uploadBundle(node: SshHost, run: InstallRun, w: string): Promise<boolean> {
  const { spec, dir, remoteBundle, progress } = run;
  await ensureRoom(node, {
    node: spec.nodeName,
    where: w,
    localPath: spec.bundle.path,
    dir,
    remotePath: remoteBundle,
    short: (free, needed) => ({
      reason: `${dir} on the node has ${free} free, the bundle needs ${needed} more; nothing was changed on the node`,
      hint: `free space in ${dir} on ${spec.nodeName} or point remoteDir at a larger file system, then run \`pulumi up\` again`,
    }),
    failureHint: `check that the bundle ${spec.bundle.path} exists (SwuBundle path)`,
  });
  progress.report("upload", 0, `→ ${remoteBundle}`);
  let skipped: boolean;
  try {
    const up = await node.upload(spec.bundle.path, remoteBundle, {
      sha256: run.sha,
      mode: 0o600,
      onProgress: (s, t) => progress.report("upload", t ? (100 * s) / t : 100),
    });
    skipped = up.skipped;
    if (spec.certificate !== undefined) {
      const argv = ["sh", "-c", 'umask 022; mkdir -p "$(dirname "$1")" && cat > "$1.tmp" && mv -f "$1.tmp" "$1"', "sh", run.certPath];
      const r = await node.run(argv, { stdin: spec.certificate, timeoutMs: 60_000 });
      if (r.code !== 0) throw new HostError(`cannot write the certificate to ${run.certPath}: exit ${r.code}`, node.label, r);
    }
  } catch (e) {
    throw asDeliveryError(e, spec.nodeName, "upload", w, `check free space in ${dir} on the node (df -h); a re-run resumes the upload`);
  }
  progress.report("upload", 100);
  return skipped;
}

/** swupdate on the uploaded bundle (with the AES key in a 0600 file when given); the bundle and key file are removed after. Returns the log tail. */
async function runSwupdate(node: SshHost, run: InstallRun, w: string, current: string | undefined): Promise<string> {
  const { spec, secrets, dir, remoteBundle } = run;
  run.progress.report("install", undefined, `swupdate -H ${spec.hardware}:${spec.hwRevision}${spec.selection ? ` -e ${spec.selection}` : ""}`);
  let aesPath: string | undefined;
  try {
    if (secrets.aesKey !== undefined) {
      const mk = await node.run(["mktemp", "-p", dir, ".aes.XXXXXXXX"], { timeoutMs: 30_000 });
      if (mk.code !== 0) throw new DeliveryError(spec.nodeName, "install", w, "cannot create a temporary file for the AES key", text(mk));
      aesPath = mk.stdout.toString("utf8").trim();
      const r = await node.run(["sh", "-c", 'umask 077; cat > "$1"', "sh", aesPath], { stdin: secrets.aesKey.trim() + "\n", timeoutMs: 30_000 });
      if (r.code !== 0) throw new DeliveryError(spec.nodeName, "install", w, "cannot write the AES key file", tailLines(r.stderr, 10));
    }
    const argv = swupdateArgv({
      certPath: run.certPath,
      hardware: spec.hardware,
      hwRevision: spec.hwRevision,
      selection: spec.selection,
      aesKeyPath: aesPath,
      certPurpose: spec.certPurpose,
      bundlePath: remoteBundle,
    });
    let res: RunResult;
    try {
      res = await node.run(argv, { timeoutMs: (spec.installTimeoutSeconds ?? DELIVERY_DEFAULTS.installTimeoutSeconds) * 1000 });
    } catch (e) {
      throw asDeliveryError(
        e,
        spec.nodeName,
        "install",
        w,
        "the install was interrupted: the target partition may be partly written; run `pulumi up` again to reinstall",
      );
    }
    const output = text(res);
    const outcome = parseInstallOutcome({ code: res.code, output });
    if (!outcome.ok) {
      throw new DeliveryError(
        spec.nodeName,
        "install",
        w,
        `${outcome.message}; the node keeps its current image ${short(current)}`,
        output,
        "check that the bundle is signed with the key matching swupdate.certificate, built for " +
          `${spec.hardware} revision ${spec.hwRevision}` +
          (spec.selection ? ` with selection ${spec.selection}` : ""),
      );
    }
    return tailLines(output, 40);
  } finally {
    const rm = [remoteBundle, ...(aesPath ? [aesPath] : [])];
    await node.run(["rm", "-f", "--", ...rm], { timeoutMs: 30_000 }).catch(() => undefined);
  }
}

/** The reboot command; the connection dropping under it is what a reboot looks like. */
async function rebootNode(node: SshHost, run: InstallRun, w: string): Promise<void> {
  run.progress.report("reboot");
  const rebootArgv = run.spec.rebootArgv ?? ["reboot"];
  try {
    const r = await node.run(rebootArgv, { timeoutMs: 30_000 });
    if (r.code !== 0 && r.code !== null)
      throw new DeliveryError(
        run.spec.nodeName,
        "reboot",
        w,
        `\`${rebootArgv.join(" ")}\` exited ${r.code}`,
        text(r),
        "the update is installed; reboot the node by hand, then run `pulumi up` again",
      );
  } catch (e) {
    if (e instanceof DeliveryError) throw e; // a dropped connection is what a reboot looks like
  }
}

/** Reconnect until the boot marker differs from `marker` (within bootTimeoutSeconds), then verify the image id. Returns it. */
async function waitForNewBoot(run: InstallRun, marker: string, logTail: string): Promise<string> {
  const { spec, progress } = run;
  progress.report("boot", undefined, `waiting up to ${spec.bootTimeoutSeconds} s`);
  const deadline = Date.now() + spec.bootTimeoutSeconds * 1000;
  let last = "";
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new DeliveryError(
        spec.nodeName,
        "boot",
        where(spec),
        `the node did not come back from the reboot within delivery.bootTimeoutSeconds (${spec.bootTimeoutSeconds} s)${last ? `: ${last}` : ""}`,
        "",
        "look at the node's console; the update is installed on its target, the bootloader may have fallen back",
      );
    }
    let h: SshHost | undefined;
    try {
      h = await connectNode(spec, run.secrets, run.connect, Math.max(1000, left), "boot");
      const m = await bootMarker(h, 15_000);
      if (m !== marker) {
        progress.report("verify");
        const running = await readImageId(h);
        if (running !== spec.imageId) {
          throw new DeliveryError(
            spec.nodeName,
            "verify",
            h.label,
            `after the update and reboot the node reports image id ${running ?? "(none)"}, not ${spec.imageId}: it booted its old image (bootloader fallback?)`,
            logTail,
            "check the bootloader's A/B switch and the selection / target devices of the bundle",
          );
        }
        progress.report("done", 100, `image ${short(running)}`);
        return running;
      }
      last = "still the same boot";
    } catch (e) {
      if (e instanceof DeliveryError && (e.phase === "verify" || /host key/i.test(e.message))) throw e;
      last = (e as Error).message.split("\n")[0];
    } finally {
      await h?.close();
    }
    await sleep(500);
  }
}
