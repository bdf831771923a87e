/**
 * The fleet model: the one description of a fleet that every later step (artifact import, image
 * composition, SWUpdate bundles, delivery, k3s join) is derived from.
 *
 * Contract: values of these types only come out of `parseFleet` (./parse.ts), which validates the raw
 * stack config and fills every default. Code that holds a `Fleet` may therefore rely on: unique node
 * names, hostnames and addresses; RFC 1123 hostnames; an odd number (>= 1) of servers; artifact pins
 * for every node's hardware; pins as lowercase hex sha256. Secrets (SSH private key, SWUpdate signing
 * key) are not part of this model: they stay Pulumi secrets and travel separately.
 */
import type { SshLogin } from "../transport/endpoint";

export const ROLES = ["server", "agent"] as const;
export type Role = (typeof ROLES)[number];

export const ARCHES = ["arm64", "x86_64"] as const;
export type Arch = (typeof ARCHES)[number];

export const HARDWARE = ["jetson-orin-nano", "turing-rk1", "turing-cm4", "x86-controller", "qemu-amd64"] as const;
export type Hardware = (typeof HARDWARE)[number];

/** The architecture each hardware kind runs; a node's `arch` must agree. */
export const HARDWARE_ARCH: Record<Hardware, Arch> = {
  "jetson-orin-nano": "arm64",
  "turing-rk1": "arm64",
  "turing-cm4": "arm64",
  "x86-controller": "x86_64",
  "qemu-amd64": "x86_64",
};

export const NETWORK_PROFILES = ["simple", "vlans", "bonding-vlans"] as const;
export type NetworkProfile = (typeof NETWORK_PROFILES)[number];

export const ARTIFACT_KINDS = ["rootfs", "kernel", "initramfs", "dtb", "firmware", "wic"] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];

export const SIGNING_METHODS = ["cms", "rsa", "rsa-pss"] as const;
export type SigningMethod = (typeof SIGNING_METHODS)[number];

/** Login user, port and pinned host key of a node or BMC (the address is kept beside it). */
export type { SshLogin } from "../transport/endpoint";

export interface TpiDelivery {
  method: "tpi";
  /** Name of the BMC (in `bmcs`) whose slot holds this module. */
  bmc: string;
  /** Turing Pi 2 slot, 1–4. */
  slot: 1 | 2 | 3 | 4;
}

export interface SwupdateDelivery {
  method: "swupdate";
  /** SWUpdate selection for A/B layouts ("stable,main"), absent for single-copy layouts. */
  selection?: string;
  /** Block device the root filesystem image is written to. Default per hardware (DEFAULT_ROOT_DEVICE). */
  rootDevice: string;
  /** Second root device of an A/B layout (used by the "alt" selection). Default none. */
  altRootDevice?: string;
}

/** Where SWUpdate writes the root filesystem on each hardware kind unless the node says otherwise. */
export const DEFAULT_ROOT_DEVICE: Record<Hardware, string> = {
  "jetson-orin-nano": "/dev/mmcblk0p1",
  "turing-rk1": "/dev/mmcblk0p2",
  "turing-cm4": "/dev/mmcblk0p2",
  "x86-controller": "/dev/sda2",
  "qemu-amd64": "/dev/vda2",
};

export type Delivery = TpiDelivery | SwupdateDelivery;

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface NodeSpec {
  name: string;
  hostname: string;
  role: Role;
  arch: Arch;
  hardware: Hardware;
  /** IPv4 address the node is reached at and k3s uses as node-ip. */
  address: string;
  /** Address on the storage VLAN (vlans / bonding-vlans profiles only). */
  storageAddress?: string;
  /** Board revision for SWUpdate hardware compatibility (written to /etc/hwrevision). */
  hwRevision: string;
  ssh: SshLogin;
  delivery: Delivery;
  labels: Record<string, string>;
  taints: Taint[];
  /**
   * Shell command run on the node (over SSH, as ssh.user) once it has joined, again whenever it
   * rejoins or the command changes; through @pulumi/command's remote.Command. Default: none.
   */
  postJoinCommand?: string;
  /** Data disks mounted at boot (e.g. the CM4's SATA SSD for Longhorn). Default none. */
  dataDisks: DataDisk[];
}

export const DATA_DISK_FILESYSTEMS = ["ext4", "xfs", "btrfs"] as const;
export type DataDiskFilesystem = (typeof DATA_DISK_FILESYSTEMS)[number];

/** A disk the node mounts at boot, before k3s starts; `nofail`, so a missing disk does not stop the boot. */
export interface DataDisk {
  /** Block device, e.g. "/dev/sda1" or "/dev/disk/by-id/ata-...-part1". */
  device: string;
  filesystem: DataDiskFilesystem;
  /** Absolute directory it is mounted on, e.g. "/var/lib/longhorn". */
  mountPoint: string;
}

export interface BmcSpec {
  name: string;
  address: string;
  ssh: SshLogin;
  /** Directory on the BMC where images are uploaded before `tpi flash --local`. */
  imageDir: string;
}

export interface ArtifactPin {
  /** Lowercase hex sha256 of the file's bytes. */
  sha256: string;
  /** Local file (absolute, or relative to the project directory). Exactly one of path / url is set. */
  path?: string;
  /** http(s) URL of a CI artifact store. */
  url?: string;
}

export interface MachineArtifacts {
  /** ISAR MACHINE name (deploy directory name), e.g. "jetson-orin-nano". */
  machine: string;
  /** ISAR build version label, e.g. "2025.01.15-build.42". */
  version: string;
  /** ISAR image recipe, e.g. "isar-image-base". */
  image: string;
  /** ISAR distro, e.g. "debian-trixie". */
  distro: string;
  rootfs: ArtifactPin;
  kernel: ArtifactPin;
  initramfs?: ArtifactPin;
  dtbs: ArtifactPin[];
  firmware?: ArtifactPin;
  wic?: ArtifactPin;
}

export interface IsarBuildSettings {
  /** The ISAR/kas tree (holds kas/base.yml, kas/machine/, kas/image/, kas/network/). */
  kasDir: string;
  workDir?: string;
  buildDir?: string;
  dlDir?: string;
  sstateDir?: string;
  engine: "docker" | "podman";
  /** Let kas-container run as root (KAS_ALLOW_ROOT=yes). Default false. */
  allowRoot?: boolean;
  /** Wall-clock limit for one build, seconds. */
  timeoutSeconds: number;
}

export interface K3sSettings {
  version: string;
  clusterCidr: string;
  serviceCidr: string;
  clusterDns: string;
  disable: string[];
  kubeletArgs: string[];
  tlsSan: string[];
  secretsEncryption: boolean;
  protectKernelDefaults: boolean;
  /** Seconds to wait for a node to be Ready after start. */
  joinTimeoutSeconds: number;
  /** Seconds to wait for a drain on removal. */
  drainTimeoutSeconds: number;
  /** Flannel backend (k3s `flannel-backend`): decides which overlay ports the firewall opens. */
  flannelBackend: FlannelBackend;
}

export const FLANNEL_BACKENDS = ["vxlan", "wireguard-native", "host-gw", "none"] as const;
export type FlannelBackend = (typeof FLANNEL_BACKENDS)[number];

export interface SwupdateSettings {
  /** Bundle version (sw-description `version`). */
  version: string;
  /** PEM certificate matching the signing key (public, not secret). */
  certificate?: string;
  signing: SigningMethod;
  /** Encrypt artifacts with AES-256-CBC (key from secret config `swupdateAesKey`). */
  encrypt: boolean;
  compression?: "zlib" | "zstd";
}

export interface NetworkSettings {
  profile: NetworkProfile;
  /** Physical interface for `simple` and `vlans`. */
  interface: string;
  /** Bond members for `bonding-vlans`. */
  bondInterfaces: string[];
  k3sVlan: number;
  storageVlan: number;
  prefixLength: number;
  gateway?: string;
  dns: string[];
}

export interface DeliverySettings {
  /** Seconds allowed for one `tpi flash`. */
  flashTimeoutSeconds: number;
  /** Seconds to wait for a node to answer SSH after power-on or reboot. */
  bootTimeoutSeconds: number;
  /** How many agents are delivered at once. */
  maxAgentsInFlight: number;
}

export interface ImageSettings {
  /** Where `nix build` gets its tools: "nixpkgs" (real images) or "host" (this machine's tools, sandbox off; simulated lab only). */
  pkgsSource: "nixpkgs" | "host";
  /** nixpkgs source path for pkgsSource "nixpkgs"; absent = <nixpkgs> from NIX_PATH. */
  nixpkgs?: string;
  /** Free space in rootfs.ext4 over its content, percent. */
  headroomPercent: number;
  /** Seconds allowed for one image build. */
  timeoutSeconds: number;
  /** Build without binary caches (`--option substituters ''`). */
  offline: boolean;
}

export interface HelmChart {
  name: string;
  chart: string;
  repo?: string;
  version?: string;
  namespace: string;
  values: Record<string, unknown>;
}

export interface WorkloadSettings {
  namespaces: string[];
  manifests: string[];
  helmCharts: HelmChart[];
}

export interface Fleet {
  /** Stack-specific cluster name, used for kubeconfig context names. */
  clusterName: string;
  nodes: NodeSpec[];
  bmcs: BmcSpec[];
  artifacts: Partial<Record<Hardware, MachineArtifacts>>;
  isar?: IsarBuildSettings;
  k3s: K3sSettings;
  swupdate: SwupdateSettings;
  network: NetworkSettings;
  delivery: DeliverySettings;
  images: ImageSettings;
  /** Public keys written to the deploy user's authorized_keys in every image. */
  authorizedKeys: string[];
  /**
   * The non-root user every image creates (passwordless sudo) and every node is logged in to; root
   * logins are refused by the images. Default "deploy". BMCs keep their own `ssh.user` (root).
   */
  deployUser: string;
  workloads: WorkloadSettings;
}
