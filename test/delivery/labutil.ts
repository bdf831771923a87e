/**
 * Helpers for the delivery suites: node disk images (MBR + ext4 root populated from a directory, as the
 * lab's slot nodes and SWUpdate nodes boot them) and small file utilities.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeDiskImage } from "../../lab/image";
import { DEPLOY_KEYS_DIR, renderSshdDropIn, renderSudoers, SSHD_DROPIN_PATH, sudoersPath } from "../../lib/render/baseline";

export async function tempDir(prefix: string): Promise<string> {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function sha256File(p: string): Promise<string> {
  const h = crypto.createHash("sha256");
  for await (const c of fs.createReadStream(p)) h.update(c as Buffer);
  return h.digest("hex");
}

export interface TestImage {
  path: string;
  sha256: string;
  imageId: string;
  hostname: string;
  k3sConfig: string;
}

/** A node image: /etc/hostname, /etc/isar-k3s/image-id, /etc/rancher/k3s/config.yaml, /etc/hwrevision, root's authorized_keys. */
export async function makeNodeImage(
  dir: string,
  o: {
    name: string;
    hostname: string;
    authorizedKey: string;
    hwRevision?: string;
    layout?: "mbr" | "bare";
    sizeMiB?: number;
    extra?: string;
    deployUser?: string;
    extraFiles?: Record<string, string>;
  },
): Promise<TestImage> {
  const imageId = crypto.createHash("sha256").update(JSON.stringify(o)).digest("hex").slice(0, 32);
  const root = path.join(dir, `${o.name}-root`);
  await fs.promises.rm(root, { recursive: true, force: true });
  const k3sConfig = `node-name: ${o.hostname}\nnode-ip: 10.0.0.${1 + (imageId.charCodeAt(0) % 200)}\n${o.extra ?? ""}`;
  const files: Record<string, [string, number]> = {
    "etc/hostname": [o.hostname + "\n", 0o644],
    "etc/isar-k3s/image-id": [imageId + "\n", 0o644],
    "etc/rancher/k3s/config.yaml": [k3sConfig, 0o600],
    "etc/hwrevision": [(o.hwRevision ?? "turing-rk1 1.0") + "\n", 0o644],
    "root/.ssh/authorized_keys": [o.authorizedKey.trim() + "\n", 0o600],
    // seed 003: with a deploy user, the image's sshd refuses root, and the user has keys and sudo
    ...(o.deployUser
      ? {
          [SSHD_DROPIN_PATH.slice(1)]: [renderSshdDropIn(), 0o644] as [string, number],
          [`${DEPLOY_KEYS_DIR.slice(1)}/${o.deployUser}`]: [o.authorizedKey.trim() + "\n", 0o644] as [string, number],
          [sudoersPath(o.deployUser).slice(1)]: [renderSudoers(o.deployUser), 0o440] as [string, number],
        }
      : {}),
    ...Object.fromEntries(Object.entries(o.extraFiles ?? {}).map(([p, c]) => [p.replace(/^\//, ""), [c, 0o644] as [string, number]])),
  };
  for (const [p, [content, mode]] of Object.entries(files)) {
    const f = path.join(root, p);
    await fs.promises.mkdir(path.dirname(f), { recursive: true });
    await fs.promises.writeFile(f, content, { mode });
  }
  const out = path.join(dir, `${o.name}.img`);
  await makeDiskImage({ rootDir: root, out, layout: o.layout ?? "mbr", sizeMiB: o.sizeMiB ?? 16 });
  await fs.promises.rm(root, { recursive: true, force: true });
  return { path: out, sha256: await sha256File(out), imageId, hostname: o.hostname, k3sConfig };
}

/** Lines of the lab log matching a pattern. */
export function labLogCount(labDir: string, re: RegExp): number {
  const f = path.join(labDir, "lab.log");
  if (!fs.existsSync(f)) return 0;
  return fs
    .readFileSync(f, "utf8")
    .split("\n")
    .filter((l) => re.test(l)).length;
}

export interface Signer {
  key: string;
  cert: string;
}

/** RSA key + self-signed certificate usable by SWUpdate's CMS check (digitalSignature, emailProtection). */
export async function makeSigner(dir: string, cn: string): Promise<Signer> {
  const { execFile } = await import("child_process");
  const { promisify } = await import("util");
  const cnf = path.join(dir, `${cn}.cnf`);
  await fs.promises.writeFile(
    cnf,
    [
      "[req]",
      "distinguished_name=dn",
      "prompt=no",
      "[dn]",
      `CN=${cn}`,
      "[v3]",
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=emailProtection",
      "",
    ].join("\n"),
  );
  const keyPath = path.join(dir, `${cn}.key`);
  const certPath = path.join(dir, `${cn}.crt`);
  await promisify(execFile)("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-config",
    cnf,
    "-extensions",
    "v3",
  ]);
  const s = { key: await fs.promises.readFile(keyPath, "utf8"), cert: await fs.promises.readFile(certPath, "utf8") };
  await fs.promises.rm(keyPath, { force: true });
  return s;
}

/** startLab for a suite: fresh state, stopped with this process. (It retried around a lab.json race the lab has since fixed; the name stays for the suites that use it.) */
export async function startLabRetry(spec: import("../../lab/spec").LabSpec, dir: string): Promise<import("../../lab/lab").Lab> {
  const { startLab } = await import("../../lab/lab");
  return startLab(spec, dir, { ownerPid: process.pid, fresh: true });
}

/**
 * A node image made from an ISAR-style .wic (MBR, root ext4 on a later partition): a copy of `wic` with
 * `files` (path → [content, mode]) written into its root filesystem with debugfs (no mount, no loop device).
 */
export async function imageFromWic(
  wic: string,
  out: string,
  files: Record<string, [string, number]>,
): Promise<{ path: string; sha256: string; offset: number }> {
  const { execFile } = await import("child_process");
  const { promisify } = await import("util");
  const { findRootFilesystem } = await import("../../lab/image");
  await fs.promises.copyFile(wic, out);
  const offset = await findRootFilesystem(out);
  if (offset === undefined) throw new Error(`${wic} has no ext4 root filesystem with /etc`);
  const stage = await tempDir("wic-files-");
  try {
    const cmds: string[] = [];
    let i = 0;
    for (const [p, [content, mode]] of Object.entries(files)) {
      const local = path.join(stage, String(i++));
      await fs.promises.writeFile(local, content);
      const parts = p.split("/").filter((x) => x);
      for (let k = 1; k < parts.length; k++) cmds.push(`mkdir /${parts.slice(0, k).join("/")}`);
      cmds.push(`rm ${p}`, `write ${local} ${p}`, `sif ${p} mode 0${(0o100000 | mode).toString(8)}`);
    }
    const cmdFile = path.join(stage, "cmds");
    await fs.promises.writeFile(cmdFile, cmds.join("\n") + "\n");
    await promisify(execFile)("debugfs", ["-w", "-f", cmdFile, `${out}?offset=${offset}`]);
  } finally {
    await fs.promises.rm(stage, { recursive: true, force: true });
  }
  return { path: out, sha256: await sha256File(out), offset };
}
