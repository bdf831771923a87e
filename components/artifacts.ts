/**
 * MachineArtifacts: the hash-pinned ISAR artifacts of one hardware kind (seed 001, ADR 001), each an
 * IsarArtifact child imported into the Nix store. When the stack config has an `isar` block, an
 * IsarBuild child runs kas-container first and every artifact waits for it.
 *
 * Everything derived from an artifact (images, bundles, deliveries) depends on its IsarArtifact, so a
 * changed pin replaces exactly that machine's chain, and a pin mismatch stops it before anything else.
 */
import * as pulumi from "@pulumi/pulumi";
import { ArtifactKind, ArtifactPin, Hardware, IsarBuildSettings, MachineArtifacts as MachinePins, NetworkProfile, Role } from "../lib/model/types";
import { IsarArtifact, IsarBuild } from "../providers/isar";

export interface MachineArtifactsArgs {
  /** Hardware kind these pins are for (names children and config paths). Required. */
  hardware: Hardware;
  /** The machine's pins from `artifacts.<hardware>`. Required. */
  pins: MachinePins;
  /** Architecture of the machine (for the optional kas build). Required. */
  arch: "arm64" | "x86_64";
  /** kas build settings; when set, an IsarBuild runs before the imports. Default: none (pins only). */
  isar?: IsarBuildSettings;
  /** Network profile overlay for kas and for "missing file" messages. Default "simple". */
  network?: NetworkProfile;
  /** Roles of the nodes using this machine: picks the kas image overlay (server wins). Default ["server"]. */
  roles?: Role[];
  /** Directory relative artifact paths are resolved against. Default: the program's working directory. */
  projectDir?: string;
}

/** What downstream steps need of one artifact. */
export interface ArtifactRef {
  storePath: pulumi.Output<string>;
  sha256: pulumi.Output<string>;
}

export class MachineArtifacts extends pulumi.ComponentResource {
  public readonly rootfs: ArtifactRef;
  public readonly kernel: ArtifactRef;
  public readonly initramfs?: ArtifactRef;
  public readonly dtbs: ArtifactRef[];
  public readonly firmware?: ArtifactRef;
  public readonly wic?: ArtifactRef;
  /** The pinned sha256 of every artifact by kind (known at preview: used to explain replacements). */
  public readonly pinnedSha256: Record<string, string>;

  constructor(name: string, args: MachineArtifactsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("isar-k3s:artifacts:Machine", name, {}, opts);
    const { hardware, pins } = args;
    const kasImage = (args.roles ?? ["server"]).includes("server") ? "k3s-server" : "k3s-agent";
    const network = args.network ?? "simple";
    let build: IsarBuild | undefined;
    if (args.isar) {
      build = new IsarBuild(
        `${name}-build`,
        {
          ...args.isar,
          machine: pins.machine,
          arch: args.arch,
          image: kasImage,
          network,
          imageRecipe: pins.image,
          distro: pins.distro,
          projectDir: args.projectDir,
        },
        { parent: this },
      );
    }
    const child = (kind: ArtifactKind, pin: ArtifactPin, suffix: string, configPath: string): ArtifactRef => {
      const a = new IsarArtifact(
        `${name}-${suffix}`,
        {
          name: `${hardware}-${suffix}`,
          machine: pins.machine,
          version: pins.version,
          kind,
          sha256: pin.sha256,
          path: pin.path,
          url: pin.url,
          projectDir: args.projectDir,
          configPath,
          kasDir: args.isar?.kasDir,
          kasImage,
          network,
        },
        { parent: this, dependsOn: build ? [build] : [] },
      );
      return { storePath: a.storePath, sha256: a.sha256 };
    };
    const at = (k: string) => `artifacts.${hardware}.${k}`;
    this.rootfs = child("rootfs", pins.rootfs, "rootfs", at("rootfs"));
    this.kernel = child("kernel", pins.kernel, "kernel", at("kernel"));
    if (pins.initramfs) this.initramfs = child("initramfs", pins.initramfs, "initramfs", at("initramfs"));
    this.dtbs = pins.dtbs.map((d, i) => child("dtb", d, `dtb${i}`, `${at("dtbs")}[${i}]`));
    if (pins.firmware) this.firmware = child("firmware", pins.firmware, "firmware", at("firmware"));
    if (pins.wic) this.wic = child("wic", pins.wic, "wic", at("wic"));

    this.pinnedSha256 = {
      rootfs: pins.rootfs.sha256,
      kernel: pins.kernel.sha256,
      ...(pins.initramfs ? { initramfs: pins.initramfs.sha256 } : {}),
      ...Object.fromEntries(pins.dtbs.map((d, i) => [`dtb${i}`, d.sha256])),
      ...(pins.firmware ? { firmware: pins.firmware.sha256 } : {}),
      ...(pins.wic ? { wic: pins.wic.sha256 } : {}),
    };
    this.registerOutputs({ rootfs: this.rootfs, kernel: this.kernel, pinnedSha256: this.pinnedSha256 });
  }
}
