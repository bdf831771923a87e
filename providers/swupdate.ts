/**
 * `SwuBundle` (a signed SWUpdate .swu per hardware and version) and `FleetUpdate` (the fleet manifest of
 * seed 000 + checksums.txt). Thin adapters over lib/swupdate/bundle-provider.ts (decisions) and
 * lib/swupdate/bundle.ts / manifest.ts (the work).
 *
 * One provider object serves both resources; it dispatches on the `resourceType` input.
 * - SwuBundle: check validates and defaults; diff compares inputs (image pins, never the big files) and
 *   replaces on any change, or when the output file is missing / changed; create writes the bundle
 *   atomically; read (refresh) notices a missing or altered file; delete removes the file it wrote.
 * - FleetUpdate: input changes rewrite manifest.json + checksums.txt in place; read notices a missing or
 *   edited manifest; delete removes both files.
 * The signing key and the AES key are secret inputs (wrapped with pulumi.secret and listed in
 * additionalSecretOutputs); the key reaches openssl only as a 0600 temp file (lib/swupdate/sign.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import type { ArtifactKind, Hardware, SigningMethod } from "../lib/model/types";

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

const provider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    const r = news.resourceType === "FleetUpdate" ? impl.checkFleetUpdate(news) : impl.checkSwuBundle(news);
    return { inputs: r.inputs, failures: r.failures };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    return news.resourceType === "FleetUpdate" ? impl.diffFleetUpdate(olds, news) : impl.diffSwuBundle(olds, news);
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    if (inputs.resourceType === "FleetUpdate") {
      const outs = await impl.createFleetUpdate(inputs);
      return { id: outs.manifestPath, outs };
    }
    const outs = await impl.createSwuBundle(inputs);
    return { id: outs.path, outs };
  },
  async update(_id, _olds, news) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    // SwuBundle changes always replace; only FleetUpdate updates in place (rewrite the files).
    const outs = news.resourceType === "FleetUpdate" ? await impl.createFleetUpdate(news) : await impl.createSwuBundle(news);
    return { outs };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    if (!props) throw new Error(`${id}: SwuBundle / FleetUpdate cannot be imported; declare it and let \`pulumi up\` write it`);
    const next = props.resourceType === "FleetUpdate" ? await impl.readFleetUpdate(props) : await impl.readSwuBundle(props);
    if (next === undefined) return { id: "", props: {} };
    return { id, props: next };
  },
  async delete(_id, props) {
    const impl = require(ROOT + "/lib/swupdate/bundle-provider") as typeof import("../lib/swupdate/bundle-provider");
    if (props.resourceType === "FleetUpdate") await impl.deleteFleetUpdate(props);
    else await impl.deleteSwuBundle(props);
  },
};

/** One artifact that goes into a bundle. */
export interface SwuBundleImageArgs {
  /** Local path of the file (absolute, or relative to the program directory). Required. */
  path: pulumi.Input<string>;
  /** Pinned sha256 of the file, hex or SRI (e.g. an IsarArtifact's sha256). The build fails on mismatch. Required; a change replaces. */
  sha256: pulumi.Input<string>;
  /** rootfs | kernel | initramfs | dtb | firmware | wic: decides handler and target (see lib/swupdate/bundle.ts). Required. */
  kind: pulumi.Input<ArtifactKind>;
  /** Name inside the bundle. Default: the file's basename. */
  name?: pulumi.Input<string>;
  /** Target device for raw images (rootfs filesystem images, wic). Default none (required for those unless `selection` gives devices). */
  device?: pulumi.Input<string>;
  /** Target path. Default /boot/<name> for kernel, initramfs, dtb; "/" for tarballs. */
  targetPath?: pulumi.Input<string>;
  /** The file is already compressed and SWUpdate decompresses it on install: "zstd", or "zlib" meaning gzip format (.gz). Default: not compressed. */
  compressed?: pulumi.Input<"zlib" | "zstd">;
}

/** Arguments of a {@link SwuBundle}. Any change replaces the bundle. */
export interface SwuBundleArgs {
  /** Hardware kind; the sw-description nests the entries under this board name. Required. */
  hardware: pulumi.Input<Hardware>;
  /** Board revisions accepted (hardware-compatibility), the nodes' hwRevision values. Required, at least one. */
  hwRevisions: pulumi.Input<pulumi.Input<string>[]>;
  /** Bundle version (sw-description `version`). Required. */
  version: pulumi.Input<string>;
  /** Free text in sw-description. Default none. */
  description?: pulumi.Input<string>;
  /** The artifacts, with their pinned sha256. Required, at least one. */
  images: pulumi.Input<pulumi.Input<SwuBundleImageArgs>[]>;
  /** "cms" (what Debian's swupdate verifies), "rsa" (PKCS#1 v1.5) or "rsa-pss". Default "cms". */
  signing?: pulumi.Input<SigningMethod>;
  /** PEM certificate of the signing key (keyUsage digitalSignature, extendedKeyUsage emailProtection). Required for "cms". */
  certificate?: pulumi.Input<string>;
  /** PEM private key (unencrypted). Secret: always stored as a Pulumi secret. Required. */
  signingKey: pulumi.Input<string>;
  /** SWUpdate AES key file text "<64 hex key> <32 hex iv>": encrypt every image and file (AES-256-CBC). Secret. Default: no encryption. */
  encryptionKey?: pulumi.Input<string>;
  /** A/B layout: software set and the rootfs device per mode, e.g. { set: "stable", rootDevices: { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" } }. Default: single copy. */
  selection?: pulumi.Input<{ set: pulumi.Input<string>; rootDevices: pulumi.Input<Record<string, pulumi.Input<string>>> }>;
  /** Include the post-update script (restart k3s / k3s-agent, wait for Ready). Default true. */
  postUpdate?: pulumi.Input<boolean>;
  /** Seconds the post-update script waits for the node to be Ready. Default 300. */
  postUpdateTimeoutSeconds?: pulumi.Input<number>;
  /** Directory the bundle is written to (created if missing; relative to the program directory). Required. */
  outputDir: pulumi.Input<string>;
  /** Bundle file name. Default "<hardware>-<version>.swu". */
  fileName?: pulumi.Input<string>;
}

/** A signed SWUpdate bundle for one hardware kind and version. */
export class SwuBundle extends pulumi.dynamic.Resource {
  /** Absolute path of the .swu file. */
  public readonly path!: pulumi.Output<string>;
  /** Size in bytes. */
  public readonly size!: pulumi.Output<number>;
  /** Lowercase hex sha256 of the .swu file. */
  public readonly sha256!: pulumi.Output<string>;
  /** The sw-description inside the bundle. */
  public readonly swDescription!: pulumi.Output<string>;
  /** Every file in the bundle (name, size, sha256 as stored). */
  public readonly entries!: pulumi.Output<{ name: string; size: number; sha256: string }[]>;
  /** false when a refresh found the file changed (the next up rebuilds it). */
  public readonly outputValid!: pulumi.Output<boolean>;
  public readonly hardware!: pulumi.Output<string>;
  public readonly version!: pulumi.Output<string>;

  constructor(name: string, args: SwuBundleArgs, opts?: pulumi.CustomResourceOptions) {
    const props: Record<string, unknown> = { resourceType: "SwuBundle" };
    for (const [k, v] of Object.entries(args)) if (v !== undefined) props[k] = v;
    props.signingKey = pulumi.secret(args.signingKey);
    if (args.encryptionKey !== undefined) props.encryptionKey = pulumi.secret(args.encryptionKey);
    super(
      provider,
      name,
      {
        ...props,
        path: undefined,
        size: undefined,
        sha256: undefined,
        swDescription: undefined,
        entries: undefined,
        outputValid: undefined,
        fileIdentity: undefined,
      },
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "signingKey", "encryptionKey"] },
      "isar-k3s",
      "SwuBundle",
    );
  }
}

/** A node of the fleet manifest. */
export interface FleetUpdateNodeArgs {
  /** Node name. Required. */
  name: pulumi.Input<string>;
  /** Address the node is reached at. Required. */
  address: pulumi.Input<string>;
  /** "arm64" or "x86_64". Required. */
  arch: pulumi.Input<string>;
  /** Hardware kind: picks the node's bundle. Required. */
  hardware: pulumi.Input<string>;
  /** "server" (updateOrder 1) or "agent" (updateOrder 2). Required. */
  role: pulumi.Input<"server" | "agent">;
  /** SWUpdate selection for A/B layouts, e.g. "stable,main". Default none. */
  selection?: pulumi.Input<string>;
}

/** A bundle of the fleet manifest: typically a SwuBundle's outputs. */
export interface FleetUpdateBundleArgs {
  /** Hardware kind the bundle is for. Required. */
  hardware: pulumi.Input<string>;
  /** Node the bundle was built for (per-node images). Default: shared by every node of `hardware` (one per hardware). */
  node?: pulumi.Input<string>;
  /** Bundle path (the manifest records its basename). Required. */
  path: pulumi.Input<string>;
  /** Lowercase hex sha256 of the bundle. Required. */
  sha256: pulumi.Input<string>;
  /** Size in bytes. Required. */
  size: pulumi.Input<number>;
}

/** Arguments of a {@link FleetUpdate}. Changes rewrite the files in place; outputDir replaces. */
export interface FleetUpdateArgs {
  /** Release version. Required. */
  version: pulumi.Input<string>;
  /** Optional timestamp recorded as given (nothing reads the clock). Default: none, for reproducible manifests. */
  timestamp?: pulumi.Input<string>;
  /** Nodes to update. Required. */
  nodes: pulumi.Input<pulumi.Input<FleetUpdateNodeArgs>[]>;
  /** Bundles, one per hardware. Required. */
  bundles: pulumi.Input<pulumi.Input<FleetUpdateBundleArgs>[]>;
  /** Directory for manifest.json and checksums.txt (usually the bundles' directory). Required. */
  outputDir: pulumi.Input<string>;
}

/** Fleet update manifest (servers first) and sha256sum-format checksums of all bundles. */
export class FleetUpdate extends pulumi.dynamic.Resource {
  public readonly manifestPath!: pulumi.Output<string>;
  public readonly checksumsPath!: pulumi.Output<string>;
  /** sha256 of manifest.json. */
  public readonly manifestSha256!: pulumi.Output<string>;
  /** The manifest JSON text. */
  public readonly manifest!: pulumi.Output<string>;
  /** false when a refresh found manifest.json edited (the next up rewrites it). */
  public readonly outputValid!: pulumi.Output<boolean>;

  constructor(name: string, args: FleetUpdateArgs, opts?: pulumi.CustomResourceOptions) {
    const props: Record<string, unknown> = { resourceType: "FleetUpdate" };
    for (const [k, v] of Object.entries(args)) if (v !== undefined) props[k] = v;
    super(
      provider,
      name,
      { ...props, manifestPath: undefined, checksumsPath: undefined, manifestSha256: undefined, manifest: undefined, outputValid: undefined },
      opts,
      "isar-k3s",
      "FleetUpdate",
    );
  }
}

/** For tests: the provider object (its methods are called directly). */
export const swupdateProvider = provider;
