/**
 * FleetNode: one node's chain up to and including delivery — its composed image (NodeImage: the ISAR
 * base plus the node's rendered files), for SWUpdate-delivered nodes its signed .swu bundle, and the
 * delivery itself (TuringPiFlash through its BMC, or SwupdateDelivery over SSH), started only after
 * the deliveries it must follow in the rollout (`deliverAfter`).
 *
 * `imageInputs` is the set of pinned inputs (artifact sha256 per kind, the rendered-files digest) known
 * at preview time; the delivery step compares it with what it last delivered to say, per node, why it
 * will be reflashed or updated.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { NodeFile } from "../lib/render/node-files";
import { BmcSpec, Fleet, NodeSpec } from "../lib/model/types";
import { SwupdateDelivery, TuringPiFlash } from "../providers/delivery";
import { NodeImage } from "../providers/image";
import { SwuBundle } from "../providers/swupdate";
import { MachineArtifacts } from "./artifacts";

export interface FleetNodeArgs {
  /** The node. Required. */
  node: NodeSpec;
  /** The whole fleet (image and SWUpdate settings). Required. */
  fleet: Fleet;
  /** The node's hardware artifacts. Required. */
  artifacts: MachineArtifacts;
  /** The node's rendered image files (lib/render/node-files), without secrets. Required. */
  files: NodeFile[];
  /** sha256 over `files` (nodeFilesDigest). Required. */
  filesDigest: string;
  /** Private key that signs sw-description; required when the node is delivered with SWUpdate. */
  swupdateSigningKey?: pulumi.Output<string>;
  /** SWUpdate AES key file text, when fleet.swupdate.encrypt. Default: none. */
  swupdateAesKey?: pulumi.Output<string>;
  /** Directory for build outputs (.swu bundles). Default <projectDir>/.cache/<stack>. */
  outputDir?: string;
  /** Project directory (holds nix/). Default: the working directory. */
  projectDir?: string;
  /** The BMC of a Turing Pi node. Required for tpi delivery. */
  bmc?: BmcSpec;
  /** Private key for SSH to the node and its BMC (secret). Default: the SSH agent. */
  sshPrivateKey?: pulumi.Output<string>;
  /** Deliveries that must succeed before this node's (rollout order). Default: none. */
  deliverAfter?: pulumi.Resource[];
}

export class FleetNode extends pulumi.ComponentResource {
  public readonly image: NodeImage;
  public readonly bundle?: SwuBundle;
  public readonly delivery: TuringPiFlash | SwupdateDelivery;
  /** Pinned inputs of the node's image, known at preview: artifact sha256 by kind and the files digest. */
  public readonly imageInputs: Record<string, string>;

  constructor(name: string, args: FleetNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("isar-k3s:fleet:Node", name, {}, opts);
    const projectDir = args.projectDir ?? process.cwd();
    this.imageInputs = { ...args.artifacts.pinnedSha256, files: args.filesDigest };
    this.image = createNodeImage(this, name, args, projectDir);
    if (args.node.delivery.method === "swupdate")
      this.bundle = createSwuBundle(this, name, args, this.image, args.outputDir ?? path.join(projectDir, ".cache", pulumi.getStack()));
    this.delivery = createDelivery(this, name, args, this.image, this.bundle, this.imageInputs);
    this.registerOutputs({ storePath: this.image.storePath, imageId: this.image.imageId, bundle: this.bundle?.path, imageInputs: this.imageInputs });
  }
}

/** The node's composed image: the ISAR artifacts plus its rendered files (the .wic only for tpi nodes). */
function createNodeImage(parent: pulumi.Resource, name: string, args: FleetNodeArgs, projectDir: string): NodeImage {
  const { node, fleet, artifacts: a } = args;
  return new NodeImage(
    `${name}-image`,
    {
      nodeName: node.name,
      hardware: node.hardware,
      arch: node.arch,
      role: node.role,
      artifacts: {
        rootfs: a.rootfs,
        kernel: a.kernel,
        initramfs: a.initramfs,
        dtbs: a.dtbs,
        wic: node.delivery.method === "tpi" ? a.wic : undefined,
      },
      files: args.files,
      headroomPercent: fleet.images.headroomPercent,
      pkgsSource: fleet.images.pkgsSource,
      nixpkgs: fleet.images.nixpkgs,
      offline: fleet.images.offline,
      timeoutSeconds: fleet.images.timeoutSeconds,
      projectDir,
      cacheDir: path.join(projectDir, ".cache", "images", pulumi.getStack()),
    },
    { parent },
  );
}

/** A file of the composed image (path relative to its store path); a missing one fails with `missing`. */
function imageFile(image: NodeImage, p: string, missing: string) {
  return image.outputFiles.apply((fs) => {
    const f = fs.find((x) => x.path === p);
    if (!f) throw new Error(missing);
    return f;
  });
}

/** The signed .swu of a SWUpdate node: its image's rootfs and kernel. */
function createSwuBundle(parent: pulumi.Resource, name: string, args: FleetNodeArgs, image: NodeImage, outputDir: string): SwuBundle {
  const { node, fleet } = args;
  if (node.delivery.method !== "swupdate") throw new Error(`${node.name}: only SWUpdate nodes get a bundle`);
  if (!args.swupdateSigningKey) {
    throw new Error(`nodes: ${node.name} is delivered with SWUpdate: set the secret \`pulumi config set --secret swupdateSigningKey < key.pem\``);
  }
  const d = node.delivery;
  const rootfs = imageFile(image, "rootfs.ext4", `${node.name}: the composed image has no rootfs.ext4`);
  const kernelName = node.arch === "arm64" ? "boot/Image" : "boot/bzImage";
  const kernel = imageFile(image, kernelName, `${node.name}: the composed image has no ${kernelName}`);
  return new SwuBundle(
    `${name}-bundle`,
    {
      hardware: node.hardware,
      hwRevisions: [node.hwRevision],
      version: fleet.swupdate.version,
      description: `isar-k3s ${fleet.clusterName} ${node.name}`,
      images: [
        {
          kind: "rootfs",
          name: "rootfs.ext4",
          path: pulumi.interpolate`${image.storePath}/rootfs.ext4`,
          sha256: rootfs.sha256,
          device: d.selection ? undefined : d.rootDevice,
        },
        { kind: "kernel", name: path.basename(kernelName), path: pulumi.interpolate`${image.storePath}/${kernelName}`, sha256: kernel.sha256 },
      ],
      signing: fleet.swupdate.signing,
      certificate: fleet.swupdate.certificate,
      signingKey: args.swupdateSigningKey,
      encryptionKey: fleet.swupdate.encrypt ? args.swupdateAesKey : undefined,
      selection: d.selection
        ? { set: d.selection.split(",")[0], rootDevices: { main: d.rootDevice, ...(d.altRootDevice ? { alt: d.altRootDevice } : {}) } }
        : undefined,
      outputDir,
      fileName: `${node.name}-${node.hardware}-${fleet.swupdate.version}.swu`,
    },
    { parent },
  );
}

/** The delivery: TuringPiFlash through the node's BMC, or SwupdateDelivery of its bundle; after `deliverAfter`. */
function createDelivery(
  parent: pulumi.Resource,
  name: string,
  args: FleetNodeArgs,
  image: NodeImage,
  bundle: SwuBundle | undefined,
  imageInputs: Record<string, string>,
): TuringPiFlash | SwupdateDelivery {
  const { node, fleet } = args;
  const common = {
    nodeName: node.name,
    node: { address: node.address, port: node.ssh.port, user: node.ssh.user, hostKey: node.ssh.hostKey },
    sources: imageInputs,
    bootTimeoutSeconds: fleet.delivery.bootTimeoutSeconds,
    sshPrivateKey: args.sshPrivateKey,
  };
  const after = { parent, dependsOn: args.deliverAfter ?? [] };
  if (node.delivery.method === "tpi") {
    const bmc = args.bmc;
    if (!bmc) throw new Error(`${node.name}: tpi delivery needs its BMC ${node.delivery.bmc}`);
    const disk = imageFile(image, "disk.img", `${node.name}: the composed image has no disk.img (does artifacts.${node.hardware} pin a wic?)`);
    return new TuringPiFlash(
      `${name}-flash`,
      {
        ...common,
        hostname: node.hostname,
        slot: node.delivery.slot,
        bmc: { name: bmc.name, address: bmc.address, port: bmc.ssh.port, user: bmc.ssh.user, hostKey: bmc.ssh.hostKey, imageDir: bmc.imageDir },
        image: { path: pulumi.interpolate`${image.storePath}/disk.img`, sha256: disk.sha256, imageId: image.imageId },
        flashTimeoutSeconds: fleet.delivery.flashTimeoutSeconds,
      },
      { ...after, deleteBeforeReplace: true },
    );
  }
  return new SwupdateDelivery(
    `${name}-swupdate`,
    {
      ...common,
      hardware: node.hardware,
      hwRevision: node.hwRevision,
      selection: node.delivery.selection,
      bundle: { path: bundle!.path, sha256: bundle!.sha256 },
      imageId: image.imageId,
      version: fleet.swupdate.version,
      certificate: fleet.swupdate.certificate,
      aesKey: fleet.swupdate.encrypt ? args.swupdateAesKey : undefined,
    },
    after,
  );
}
