/**
 * `NodeImage`: one node's image, composed by `nix build` from ISAR artifacts and the node's rendered files.
 * Thin adapter over lib/image/node-image-provider.ts (decisions) and lib/image/compose.ts (the build).
 *
 * - check: validates inputs, fills defaults and the expression hash (sha256 of the nix/ files).
 * - diff: a digest of every image input (identity, artifact store paths + sha256, files, wic options,
 *   package set, expression hash); any change → replace, listing the changed inputs, so `pulumi preview`
 *   shows exactly which nodes' images change. A store path that refresh found gone → replace (rebuild).
 *   No building in diff.
 * - create: `nix build --json --no-link` (a Nix cache hit when nothing changed); a failed build errors with
 *   the derivation path and the last lines of the build log.
 * - read (refresh): checks the store path still exists.
 * - delete: drops the GC root; the store path goes with the next `nix-store --gc`.
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import type { ImageEntry, NodeArtifacts, OutputFile } from "../lib/image/compose";
import type { Arch, Hardware, Role } from "../lib/model/types";

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

const provider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    const r = impl.checkNodeImage(news);
    return { inputs: r.inputs, failures: r.failures };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    return impl.diffNodeImage(olds, news);
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    const outs = await impl.createNodeImage(inputs);
    return { id: outs.storePath, outs };
  },
  async update(_id, olds, news) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    return { outs: impl.updateNodeImage(olds, news) };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    if (!props || !props.storePath) throw new Error(`NodeImage ${id}: cannot be imported; declare it and let \`pulumi up\` build it`);
    return { id, props: impl.refreshNodeImage(props) };
  },
  async delete(_id, props) {
    const impl = require(ROOT + "/lib/image/node-image-provider") as typeof import("../lib/image/node-image-provider");
    impl.deleteNodeImage(props);
  },
};

/** An artifact in the Nix store, e.g. an IsarArtifact's storePath and sha256. */
export interface NodeImageArtifactArgs {
  /** /nix/store/<hash>-<name>, as `nix-store --add-fixed sha256` made it. */
  storePath: pulumi.Input<string>;
  /** Lowercase hex sha256 of the file. */
  sha256: pulumi.Input<string>;
}

/** Arguments of a {@link NodeImage}. */
export interface NodeImageArgs {
  /** Node name (RFC 1123 label); names the store path. Default: the resource name. Changing it replaces. */
  nodeName?: pulumi.Input<string>;
  /** Hardware kind, recorded in metadata.json. Required. Changing it replaces. */
  hardware: pulumi.Input<Hardware>;
  /** "arm64" (kernel → boot/Image) or "x86_64" (boot/bzImage). Required. Changing it replaces. */
  arch: pulumi.Input<Arch>;
  /** k3s role, written to /etc/k3s-role. Required. Changing it replaces. */
  role: pulumi.Input<Role>;
  /** ISAR artifacts: rootfs and kernel required; initramfs, dtbs, wic optional (default none). Any change replaces. */
  artifacts: pulumi.Input<{
    rootfs: pulumi.Input<NodeImageArtifactArgs>;
    kernel: pulumi.Input<NodeImageArtifactArgs>;
    initramfs?: pulumi.Input<NodeImageArtifactArgs>;
    dtbs?: pulumi.Input<pulumi.Input<NodeImageArtifactArgs>[]>;
    wic?: pulumi.Input<NodeImageArtifactArgs>;
  }>;
  /**
   * The node's rendered files (lib/render renderNodeFiles): path, content, mode, uid, gid; or directories
   * ({ path, directory: true, mode, uid, gid }). Never secrets: they land in the world-readable store
   * (a k3s config with `token` is refused). Required. Any change replaces.
   */
  files: pulumi.Input<pulumi.Input<ImageEntry>[]>;
  /** Root partition number in the .wic. Default: the only ext2/3/4 partition holding /etc. Changing it replaces. */
  wicRootPartition?: pulumi.Input<number>;
  /** Free space in rootfs.ext4 over its content, percent. Default 30. Changing it replaces. */
  headroomPercent?: pulumi.Input<number>;
  /** "nixpkgs" (real images) or "host" (test-only host tools, sandbox off). Default "nixpkgs". Changing it replaces. */
  pkgsSource?: pulumi.Input<"host" | "nixpkgs">;
  /** nixpkgs source path (`nix eval --raw .#lib.nixpkgsPath`, see nix/README.md). Default: <nixpkgs> from NIX_PATH. Changing it replaces. */
  nixpkgs?: pulumi.Input<string>;
  /** sha256 of the nix/ expressions. Default: computed by check from <projectDir>/nix. Changing it replaces. */
  expressionHash?: pulumi.Input<string>;
  /** Build without binary caches (`--option substituters ''`). Default true. Updates in place. */
  offline?: pulumi.Input<boolean>;
  /** Build time limit in seconds (customTimeouts do not apply to dynamic resources). Default 1800. Updates in place. */
  timeoutSeconds?: pulumi.Input<number>;
  /** Keep a GC root <cacheDir>/gcroots/<nodeName> while the resource exists. Default true. Updates in place. */
  gcRoot?: pulumi.Input<boolean>;
  /** Directory holding nix/node.nix. Default: found upwards from the provider code. Updates in place. */
  projectDir?: pulumi.Input<string>;
  /** Input JSON and GC roots. Default <projectDir>/.cache/images. Updates in place. */
  cacheDir?: pulumi.Input<string>;
}

/** One node's composed image in the Nix store. */
export class NodeImage extends pulumi.dynamic.Resource {
  /** /nix/store/<hash>-node-image-<node>: rootfs.ext4, boot/, metadata.json, SHA256SUMS (+ disk.img with a .wic). */
  public readonly storePath!: pulumi.Output<string>;
  /** The derivation that built it. */
  public readonly drvPath!: pulumi.Output<string>;
  /** Stable id of the image's inputs; also in /etc/isar-k3s/image-id inside the image. */
  public readonly imageId!: pulumi.Output<string>;
  /** Every output file (relative path, size, sha256). */
  public readonly outputFiles!: pulumi.Output<OutputFile[]>;
  /** sha256 over all image inputs: what diff compares. */
  public readonly inputDigest!: pulumi.Output<string>;
  /** false when a refresh found the store path gone (the next up rebuilds it). */
  public readonly storePathValid!: pulumi.Output<boolean>;
  public readonly nodeName!: pulumi.Output<string>;
  public readonly expressionHash!: pulumi.Output<string>;

  constructor(name: string, args: NodeImageArgs, opts?: pulumi.CustomResourceOptions) {
    const props: Record<string, unknown> = { nodeName: name };
    for (const [k, v] of Object.entries(args)) if (v !== undefined) props[k] = v;
    super(
      provider,
      name,
      { ...props, storePath: undefined, drvPath: undefined, imageId: undefined, outputFiles: undefined, inputDigest: undefined, storePathValid: undefined },
      opts,
      "isar-k3s",
      "NodeImage",
    );
  }
}

/** For tests: the provider object (its methods are called directly). */
export const nodeImageProvider = provider;

/** Re-exported for callers that build args from lib/render output. */
export type { ImageEntry, NodeArtifacts };
