/**
 * ISAR's deploy naming and the kas-container command that produces a machine's artifacts. Pure: no I/O.
 *
 * Facts (ilbers/isar bitbake.conf / image.bbclass, see REFERENCE.md):
 * - deploy directory: <build>/tmp/deploy/images/<MACHINE>/
 * - image files: <image>-<distro>-<machine>.<type> (.wic, .wic.bmap, .tar.gz rootfs, .ext4, ...)
 * - kernel: <image>-<distro>-<machine>-vmlinuz (x86), -vmlinux (arm64)
 * - initrd: <image>-<distro>-<machine>-initrd.img
 * - device trees: by their own base name (e.g. tegra234-p3768-0000+p3767-0005-nv.dtb)
 * kas overlays (seed 002): kas/base.yml : kas/machine/<machine>.yml : kas/image/<k3s-server|k3s-agent>.yml
 * : kas/network/<profile>.yml, colon-joined, relative to the ISAR tree (kas-container's working dir).
 *
 * Guarantees: names are built only from validated model fields; the argv never passes through a shell.
 */
import * as path from "path";
import type { Arch, ArtifactKind, ArtifactPin, MachineArtifacts, NetworkProfile, Role } from "../model/types";

export const KAS_IMAGE_OVERLAYS = ["k3s-server", "k3s-agent"] as const;
/** The image overlay in kas/image/: one per k3s role. */
export type KasImageOverlay = (typeof KAS_IMAGE_OVERLAYS)[number];

export function overlayForRole(role: Role): KasImageOverlay {
  return role === "server" ? "k3s-server" : "k3s-agent";
}

/** The fields of MachineArtifacts that ISAR file names are made of. */
export type IsarImageId = Pick<MachineArtifacts, "machine" | "image" | "distro">;

/** "<image>-<distro>-<machine>", the stem of every image file ISAR deploys. */
export function imageStem(m: IsarImageId): string {
  return `${m.image}-${m.distro}-${m.machine}`;
}

/** <buildDir>/tmp/deploy/images/<machine> */
export function deployDir(buildDir: string, machine: string): string {
  return path.join(buildDir, "tmp", "deploy", "images", machine);
}

/** ISAR's KERNEL_FILE: vmlinux on arm64, vmlinuz elsewhere. */
export function kernelFile(arch: Arch): string {
  return arch === "arm64" ? "vmlinux" : "vmlinuz";
}

export interface NamingOptions {
  /** Target architecture; decides vmlinuz (x86_64) vs vmlinux (arm64). Required for kind "kernel". */
  arch?: Arch;
  /** Rootfs image type suffix. Default "tar.gz". */
  rootfsType?: string;
  /** Disk image type suffix. Default "wic". */
  wicType?: string;
  /** For kind "dtb" (and "firmware"): the file's base name, since ISAR deploys those under their own names. */
  fileName?: string;
}

/**
 * Default deploy file name of an artifact kind, by ISAR naming. Device trees and firmware have no
 * ISAR-derived name: they need `opts.fileName` (or the pin's path), else an Error says so.
 */
export function defaultFileName(m: IsarImageId, kind: ArtifactKind, opts: NamingOptions = {}): string {
  const stem = imageStem(m);
  switch (kind) {
    case "rootfs":
      return `${stem}.${opts.rootfsType ?? "tar.gz"}`;
    case "wic":
      return `${stem}.${opts.wicType ?? "wic"}`;
    case "kernel":
      if (!opts.arch) throw new Error(`the kernel file name of ${m.machine} depends on the architecture (vmlinuz on x86_64, vmlinux on arm64): pass arch`);
      return `${stem}-${kernelFile(opts.arch)}`;
    case "initramfs":
      return `${stem}-initrd.img`;
    case "dtb":
    case "firmware":
      if (!opts.fileName) throw new Error(`ISAR deploys ${kind} files under their own names: give the file name (for ${m.machine})`);
      return path.basename(opts.fileName);
  }
}

/** Default absolute-or-relative path of an artifact in a build dir's deploy directory. */
export function defaultDeployPath(buildDir: string, m: IsarImageId, kind: ArtifactKind, opts: NamingOptions = {}): string {
  return path.join(deployDir(buildDir, m.machine), defaultFileName(m, kind, opts));
}

/** The pins of a MachineArtifacts as (kind, pin, index) triples, dtbs expanded; absent optional kinds skipped. */
export function pinsOf(m: MachineArtifacts): { kind: ArtifactKind; pin: ArtifactPin; index: number }[] {
  const out: { kind: ArtifactKind; pin: ArtifactPin; index: number }[] = [];
  for (const kind of ["rootfs", "kernel", "initramfs", "firmware", "wic"] as const) {
    const pin = m[kind];
    if (pin) out.push({ kind, pin, index: 0 });
  }
  m.dtbs.forEach((pin, index) => out.push({ kind: "dtb", pin, index }));
  return out;
}

export interface KasTarget {
  /** ISAR MACHINE: selects kas/machine/<machine>.yml. */
  machine: string;
  /** Image overlay: kas/image/<overlay>.yml. */
  image: KasImageOverlay;
  /** Network profile: kas/network/<profile>.yml. */
  network: NetworkProfile;
  /** More overlay files appended after the four standard ones (relative to the ISAR tree). Default none. */
  extraOverlays?: string[];
}

const SAFE_COMPONENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The colon-joined kas config list (relative to the ISAR tree) for a target. */
export function kasConfigList(t: KasTarget): string {
  for (const [what, v] of [
    ["machine", t.machine],
    ["image", t.image],
    ["network", t.network],
  ] as const) {
    if (!SAFE_COMPONENT.test(v)) throw new Error(`kas ${what} ${JSON.stringify(v)} is not a plain file name component ([A-Za-z0-9._-])`);
  }
  for (const o of t.extraOverlays ?? []) {
    if (o === "" || o.includes(":") || /[\0\n]/.test(o)) throw new Error(`extra kas overlay ${JSON.stringify(o)} must be a non-empty path without ':'`);
  }
  return [`kas/base.yml`, `kas/machine/${t.machine}.yml`, `kas/image/${t.image}.yml`, `kas/network/${t.network}.yml`, ...(t.extraOverlays ?? [])].join(":");
}

/** argv of the kas-container build for a target: kas-container --isar build <configs>. */
export function kasBuildArgv(t: KasTarget, kasContainer = "kas-container"): string[] {
  return [kasContainer, "--isar", "build", kasConfigList(t)];
}

/** Render an argv for humans (error messages), quoting what a POSIX shell would split or expand. */
export function formatCommand(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}
