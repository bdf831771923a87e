/**
 * k3s config.yaml renderer (/etc/rancher/k3s/config.yaml), after seed 000 "K3s Cluster Configuration".
 *
 * Contract:
 * - Output is YAML emitted by the `yaml` library from a plain object; keys are k3s CLI flag names.
 * - The cluster token is NEVER rendered. The config names `token-file: /etc/rancher/k3s/token`; the
 *   token itself reaches the node at join time (0600 upload), so images and the Nix store stay free of it.
 * - Cluster-wide server flags (CIDRs, cluster-dns, disable, secrets-encryption) are identical on every
 *   server, as k3s requires; agent configs carry only agent flags.
 * - The image's config.yaml holds only what is the node's own and stable: never `cluster-init` nor
 *   `server:` (which member a node joins through is decided at join time: lib/k3s/join.ts chooses a live
 *   server, or `cluster-init` for a cluster that does not exist yet) and nothing that names another
 *   server. So the cluster's identity never depends on which server came first, and re-imaging one
 *   server changes no other node's image.
 * - Labels and taints are not in the image either: a label edit must never change an image (and so
 *   never re-flash a node). They reach k3s at registration through a drop-in written by the join
 *   (`renderRegistrationDropIn`), and every later change goes through the API (kubectl, lib/k3s/join.ts).
 * - The join's own choices go into drop-ins, /etc/rancher/k3s/config.yaml.d/50-isar-k3s-join.yaml
 *   (`renderJoinDropIn`) and 60-isar-k3s-registration.yaml, written by the join over SSH, never into the
 *   image (k3s reads config.yaml, then config.yaml.d/*.yaml in lexical order; later keys replace:
 *   lab/k3s/BEHAVIOURS.md).
 * - Deterministic: same fleet, same bytes.
 */
import { stringify } from "yaml";
import { Fleet, NodeSpec } from "../model/types";
import { DeploymentPlan } from "../plan/plan";

export const K3S_CONFIG_PATH = "/etc/rancher/k3s/config.yaml";
export const K3S_TOKEN_PATH = "/etc/rancher/k3s/token";
/** The join's drop-in: `server:` (or `cluster-init`) chosen at join time. */
export const K3S_JOIN_DROPIN_PATH = "/etc/rancher/k3s/config.yaml.d/50-isar-k3s-join.yaml";
/** The registration drop-in: node-label / node-taint, read by k3s only when it registers the Node. */
export const K3S_REGISTRATION_DROPIN_PATH = "/etc/rancher/k3s/config.yaml.d/60-isar-k3s-registration.yaml";

/** Extra labels k3s sets at registration for each hardware kind (seed 000: Jetson agents are GPU nodes). */
export function hardwareLabels(node: NodeSpec): Record<string, string> {
  switch (node.hardware) {
    case "jetson-orin-nano":
      return { "nvidia.com/gpu": "true", "node.kubernetes.io/instance-type": "jetson-orin" };
    case "turing-rk1":
    case "turing-cm4":
      return { "node.kubernetes.io/instance-type": node.hardware };
    default:
      return { "node.kubernetes.io/instance-type": "edge" };
  }
}

/** All labels a node registers with: hardware defaults overridden by the node's own labels. */
export function nodeLabels(node: NodeSpec): Record<string, string> {
  return { ...hardwareLabels(node), ...node.labels };
}

export function taintString(t: { key: string; value?: string; effect: string }): string {
  return t.value === undefined ? `${t.key}:${t.effect}` : `${t.key}=${t.value}:${t.effect}`;
}

/** The config object for one node (exported for structural tests and for the k3s join step). */
export function k3sConfigObject(fleet: Fleet, _plan: DeploymentPlan, node: NodeSpec): Record<string, unknown> {
  const k = fleet.k3s;
  const common: Record<string, unknown> = {
    "node-name": node.hostname,
    "node-ip": node.address,
    "token-file": K3S_TOKEN_PATH,
    "kubelet-arg": [...k.kubeletArgs],
    "protect-kernel-defaults": k.protectKernelDefaults,
  };
  if (node.role === "agent") return common;
  return {
    ...common,
    "cluster-cidr": k.clusterCidr,
    "service-cidr": k.serviceCidr,
    "cluster-dns": k.clusterDns,
    disable: [...k.disable],
    "secrets-encryption": k.secretsEncryption,
    // vxlan is k3s's default; another backend is a critical flag (same on every server).
    ...(k.flannelBackend !== "vxlan" ? { "flannel-backend": k.flannelBackend } : {}),
    // the server's own address (k3s adds its node-ip anyway) and the fleet's extra names: never another
    // server's address, so no server's image depends on which server came first
    "tls-san": unique([node.address, ...k.tlsSan]),
    "write-kubeconfig-mode": "0600",
  };
}

export function renderK3sConfig(fleet: Fleet, plan: DeploymentPlan, node: NodeSpec): string {
  return stringify(k3sConfigObject(fleet, plan, node), { lineWidth: 0 });
}

/**
 * The registration drop-in (K3S_REGISTRATION_DROPIN_PATH): the labels and taints the Node registers
 * with, so it is never schedulable without its taints. Written at join time and rewritten with each
 * change (k3s reads it only at registration; the change itself goes through kubectl). Deterministic.
 */
export function renderRegistrationDropIn(labels: Record<string, string>, taints: { key: string; value?: string; effect: string }[]): string {
  const doc: Record<string, unknown> = {
    "node-label": Object.keys(labels)
      .sort()
      .map((key) => `${key}=${labels[key]}`),
  };
  if (taints.length > 0) doc["node-taint"] = taints.map(taintString);
  return stringify(doc, { lineWidth: 0 });
}

/** How a node enters the cluster: through a live server's URL, or by initialising a new cluster. */
export type JoinTarget = { server: string } | { clusterInit: true };

/**
 * The join drop-in (K3S_JOIN_DROPIN_PATH), written at join time: `server: <live member URL>` or
 * `cluster-init: true`. Deterministic.
 */
export function renderJoinDropIn(target: JoinTarget): string {
  const doc: Record<string, unknown> = "server" in target ? { server: target.server } : { "cluster-init": true };
  return stringify(doc, { lineWidth: 0 });
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
