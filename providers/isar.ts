/**
 * Pulumi dynamic resources for ISAR artifacts: `IsarArtifact` (a hash-pinned file or URL imported into
 * the Nix store) and `IsarBuild` (a kas-container build whose deploy outputs feed IsarArtifacts).
 * Thin adapters: every decision lives in lib/artifacts/isar-provider.ts (diffs, checks, create / refresh),
 * which requires lib/artifacts/{import,kas,hash,nixstore}.ts.
 *
 * IsarArtifact
 * - check: validates the inputs (pin syntax, exactly one source, names). Touches nothing.
 * - diff: a changed pin (hex and SRI of the same hash are equal), path, url or store name → replace
 *   (create-before-delete); drift recorded by a refresh → replace; metadata → update; nothing changed →
 *   no changes. Never hashes, never runs nix-store.
 * - create: hashes the bytes (always), fails on a mismatch before anything enters the store (so nothing
 *   downstream is created), adds the file with `nix-store --add-fixed sha256`.
 * - read (refresh): notices a vanished store path and a source file whose bytes changed (re-hashed only
 *   when size / mtime / ctime / inode moved, or always with refreshVerify "full").
 * - delete: leaves the store path: removing it is the Nix garbage collector's job (other stacks, GC roots
 *   or running flash jobs may still use it).
 *
 * IsarBuild
 * - diff: inputs that shape the image (tree, build dir, engine, machine, overlays, naming, triggers)
 *   replace, i.e. rebuild; cache dirs, timeout and tool locations update in place without a rebuild.
 * - create: runs the build (timeout from timeoutSeconds, full log under <buildDir>/isar-k3s-logs/); on
 *   failure the error holds the exit code, the last 40 log lines and the log path.
 * - read (refresh): marks outputs that vanished, so the next update rebuilds.
 * - delete: leaves the build directory (sstate cache, downloads).
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import type { Arch, ArtifactKind, NetworkProfile } from "../lib/model/types";
import type { KasImageOverlay } from "../lib/artifacts/isar-names";

/** Drop keys whose value is undefined, so they do not override defaults. Used in constructors only. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

const artifactProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    const failures = impl.checkArtifactInputs(news);
    return { inputs: news, failures };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    return impl.diffArtifact(olds, news);
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    const outs = await impl.createArtifact(inputs);
    return { id: outs.storePath, outs };
  },
  async update(_id, olds, news) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    return { outs: await impl.updateArtifact(olds, news) };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    if (!props || !props.sourcePath) {
      throw new Error(`IsarArtifact ${id}: cannot be imported into a stack; declare it from the stack config and let \`pulumi up\` create it`);
    }
    const r = await impl.refreshArtifact(props);
    return { id, props: r.state };
  },
  async delete() {
    // The store path stays: garbage collection (nix-store --gc) removes it once nothing refers to it.
  },
};

/** Arguments of an {@link IsarArtifact}. */
export interface IsarArtifactArgs {
  /** Artifact name for messages and outputs, e.g. "jetson-orin-nano-rootfs". Default: the resource name. */
  name?: pulumi.Input<string>;
  /** ISAR MACHINE the artifact was built for (deploy directory name), e.g. "jetson-orin-nano". Required. */
  machine: pulumi.Input<string>;
  /** ISAR build version label, e.g. "2025.01.15-build.42". Required; recorded in the outputs. */
  version: pulumi.Input<string>;
  /** What the file is: rootfs, kernel, initramfs, dtb, firmware or wic. Required. */
  kind: pulumi.Input<ArtifactKind>;
  /** Pinned sha256 of the file's bytes: 64 hex digits or SRI "sha256-<base64>". Required. Changing it replaces the resource. */
  sha256: pulumi.Input<string>;
  /** Local file (absolute, or relative to projectDir), e.g. an IsarBuild output. Exactly one of path / url. Changing it replaces. */
  path?: pulumi.Input<string>;
  /** http(s) URL of a CI artifact store. Exactly one of path / url. Changing it replaces. */
  url?: pulumi.Input<string>;
  /** Base directory for a relative path. Default: the program's working directory (process.cwd()). */
  projectDir?: pulumi.Input<string>;
  /** Store path name. Default: the file's base name, or the URL's last path segment. Changing it replaces. */
  storeName?: pulumi.Input<string>;
  /** Refresh verification: "stat" re-hashes only if size / mtime / ctime / inode changed; "full" always re-hashes. Default "stat". */
  refreshVerify?: pulumi.Input<"stat" | "full">;
  /** Where URL downloads are staged before entering the store. Default: the OS temp directory. */
  downloadDir?: pulumi.Input<string>;
  /** Stack name used in "how to update the pin" messages. Default: the current stack (pulumi.getStack()). */
  stack?: pulumi.Input<string>;
  /** Config path of this pin in the isar-k3s namespace for messages, e.g. "artifacts.jetson-orin-nano.rootfs". Default: none. */
  configPath?: pulumi.Input<string>;
  /** ISAR tree shown in the "missing file" build command. Default: none ("<your ISAR tree>"). */
  kasDir?: pulumi.Input<string>;
  /** kas image overlay shown in the "missing file" build command. Default "k3s-server". */
  kasImage?: pulumi.Input<KasImageOverlay>;
  /** kas network overlay shown in the "missing file" build command. Default "simple". */
  network?: pulumi.Input<NetworkProfile>;
}

/** A hash-pinned ISAR artifact imported into the Nix store as a fixed-output path. */
export class IsarArtifact extends pulumi.dynamic.Resource {
  /** Artifact name. */
  public readonly name!: pulumi.Output<string>;
  public readonly machine!: pulumi.Output<string>;
  public readonly version!: pulumi.Output<string>;
  public readonly kind!: pulumi.Output<ArtifactKind>;
  /** Size in bytes. */
  public readonly size!: pulumi.Output<number>;
  /** Verified sha256, lowercase hex. */
  public readonly sha256!: pulumi.Output<string>;
  /** Verified sha256, SRI form. */
  public readonly sri!: pulumi.Output<string>;
  /** Verified sha256, Nix base32. */
  public readonly nixBase32!: pulumi.Output<string>;
  /** /nix/store/<hash>-<name>: the bytes, content-addressed. */
  public readonly storePath!: pulumi.Output<string>;
  /** Absolute source file, or the URL. */
  public readonly sourcePath!: pulumi.Output<string>;
  /** Source mtime when verified (ms since epoch); null for URLs. */
  public readonly mtimeMs!: pulumi.Output<number | null>;
  /** Drift found by the last refresh (empty when in sync). */
  public readonly drift!: pulumi.Output<string[]>;

  constructor(name: string, args: IsarArtifactArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      name: name,
      projectDir: process.cwd(),
      stack: pulumi.getStack(),
      ...defined(args),
      size: undefined,
      sri: undefined,
      nixBase32: undefined,
      storePath: undefined,
      sourcePath: undefined,
      mtimeMs: undefined,
      fingerprint: undefined,
      drift: undefined,
    };
    super(artifactProvider, name, props, opts, "isar-k3s", "IsarArtifact");
  }
}

const buildProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    return { inputs: news, failures: impl.checkBuildInputs(news) };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    return impl.diffBuild(olds, news);
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    const outs = await impl.runBuild(inputs);
    return { id: `${outs.deployDir}#${outs.logPath}`, outs };
  },
  async update(_id, olds, news) {
    const keep = {
      buildPath: olds.buildPath,
      deployDir: olds.deployDir,
      logPath: olds.logPath,
      durationMs: olds.durationMs,
      rootfs: olds.rootfs,
      kernel: olds.kernel,
      initramfs: olds.initramfs,
      wic: olds.wic,
      dtbs: olds.dtbs,
      files: olds.files,
      missing: olds.missing,
    };
    return { outs: { ...news, ...keep } };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/artifacts/isar-provider") as typeof import("../lib/artifacts/isar-provider");
    if (!props || !props.deployDir) throw new Error(`IsarBuild ${id}: cannot be imported into a stack; declare it and let \`pulumi up\` run the build`);
    return { id, props: await impl.refreshBuild(props) };
  },
  async delete() {
    // The build directory stays: it holds the sstate cache and downloads (kas-container clean removes tmp/).
  },
};

/** Arguments of an {@link IsarBuild}. Directory arguments mirror the stack config's `isar` block (IsarBuildSettings). */
export interface IsarBuildArgs {
  /** The ISAR tree holding kas/base.yml, kas/machine/, kas/image/, kas/network/; kas-container runs here. Required. */
  kasDir: pulumi.Input<string>;
  /** KAS_WORK_DIR. Default: kasDir. */
  workDir?: pulumi.Input<string>;
  /** KAS_BUILD_DIR. Default: <workDir>/build. */
  buildDir?: pulumi.Input<string>;
  /** DL_DIR (download cache, mounted into the container). Default: unset (kas's default inside the build dir). */
  dlDir?: pulumi.Input<string>;
  /** SSTATE_DIR (shared state cache). Default: unset (kas's default inside the build dir). */
  sstateDir?: pulumi.Input<string>;
  /** KAS_CONTAINER_ENGINE: "podman" (kas-container then runs it through sudo) or "docker". Default "podman". */
  engine?: pulumi.Input<"podman" | "docker">;
  /** Wall-clock limit of the build in seconds (Pulumi's customTimeouts do not apply to dynamic resources). Default 21600 (6 h, the config default). */
  timeoutSeconds?: pulumi.Input<number>;
  /** ISAR MACHINE: selects kas/machine/<machine>.yml and the deploy directory. Required. */
  machine: pulumi.Input<string>;
  /** Image overlay kas/image/<image>.yml. Required. */
  image: pulumi.Input<KasImageOverlay>;
  /** Network overlay kas/network/<network>.yml. Default "simple". */
  network?: pulumi.Input<NetworkProfile>;
  /** More overlays appended to the kas config list (paths relative to kasDir). Default none. */
  extraOverlays?: pulumi.Input<pulumi.Input<string>[]>;
  /** Target architecture: decides the kernel name (vmlinux on arm64, vmlinuz on x86_64). Required. */
  arch: pulumi.Input<Arch>;
  /** ISAR image recipe, the first part of deployed file names. Default "isar-image-base". */
  imageRecipe?: pulumi.Input<string>;
  /** ISAR distro in deployed file names. Default "debian-trixie". */
  distro?: pulumi.Input<string>;
  /** Rootfs image type suffix. Default "tar.gz". */
  rootfsType?: pulumi.Input<string>;
  /** Disk image type suffix. Default "wic". */
  wicType?: pulumi.Input<string>;
  /** Base directory for relative paths. Default: the program's working directory (process.cwd()). */
  projectDir?: pulumi.Input<string>;
  /** kas-container executable. Default "kas-container" from PATH. */
  kasContainer?: pulumi.Input<string>;
  /** Allow running as root (sets KAS_ALLOW_ROOT=yes). Default false. */
  allowRoot?: pulumi.Input<boolean>;
  /** Directories put first on PATH for the build (where the engine and sudo live). Default none. */
  searchPath?: pulumi.Input<pulumi.Input<string>[]>;
  /** After a timeout: seconds between SIGTERM, SIGINT and SIGKILL to the build's process group. Default 60. */
  killGraceSeconds?: pulumi.Input<number>;
  /** Any values whose change forces a rebuild (e.g. the ISAR tree's git commit). Default none. */
  triggers?: pulumi.Input<unknown[]>;
}

/** One kas-container ISAR build and the deploy outputs it produced, found by ISAR naming. */
export class IsarBuild extends pulumi.dynamic.Resource {
  /** The resolved build directory (KAS_BUILD_DIR, absolute). */
  public readonly buildPath!: pulumi.Output<string>;
  /** <buildDir>/tmp/deploy/images/<machine>. */
  public readonly deployDir!: pulumi.Output<string>;
  /** Full build log. */
  public readonly logPath!: pulumi.Output<string>;
  public readonly rootfs!: pulumi.Output<string | undefined>;
  public readonly kernel!: pulumi.Output<string | undefined>;
  public readonly initramfs!: pulumi.Output<string | undefined>;
  public readonly wic!: pulumi.Output<string | undefined>;
  public readonly dtbs!: pulumi.Output<string[]>;
  public readonly files!: pulumi.Output<string[]>;

  constructor(name: string, args: IsarBuildArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      engine: "podman",
      timeoutSeconds: 6 * 3600,
      network: "simple",
      imageRecipe: "isar-image-base",
      distro: "debian-trixie",
      projectDir: process.cwd(),
      ...defined(args),
      buildPath: undefined,
      deployDir: undefined,
      logPath: undefined,
      durationMs: undefined,
      rootfs: undefined,
      kernel: undefined,
      initramfs: undefined,
      wic: undefined,
      dtbs: undefined,
      files: undefined,
      missing: undefined,
    };
    super(buildProvider, name, props, opts, "isar-k3s", "IsarBuild");
  }
}

/** The provider objects, for tests that drive check / diff / create / read directly. */
export const providers = { artifact: artifactProvider, build: buildProvider };
