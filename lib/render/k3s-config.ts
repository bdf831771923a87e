/**
 * k3s config.yaml renderer (/etc/rancher/k3s/config.yaml), after seed 000 "K3s Cluster Configuration".
 *
 * Contract:
 * - Output is YAML emitted by the `yaml` library from a plain object; keys are k3s CLI flag names.
 * - The cluster token is NEVER rendered. The config names `token-file: /etc/rancher/k3s/token`; the
 *   token itself reaches the node at join time (0600 upload), so images and the Nix store stay free of it.
 * - Cluster-wide server flags (CIDRs, cluster-dns, disable, secrets-encryption) are identical on every
 *   server, as k3s requires; agent configs carry only agent flags.
 * - First server: `cluster-init: true`. Further servers and agents: `server: https://<first>:6443`.
 * - Deterministic: same fleet, same bytes.
 */
import { stringify } from "yaml";
import { Fleet, NodeSpec } from "../model/types";
import { DeploymentPlan } from "../plan/plan";

export const K3S_CONFIG_PATH = "/etc/rancher/k3s/config.yaml";
export const K3S_TOKEN_PATH = "/etc/rancher/k3s/token";

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
export function k3sConfigObject(fleet: Fleet, plan: DeploymentPlan, node: NodeSpec): Record<string, unknown> {
  const k = fleet.k3s;
  const labels = nodeLabels(node);
  const common: Record<string, unknown> = {
    "node-name": node.hostname,
    "node-ip": node.address,
    "token-file": K3S_TOKEN_PATH,
    "node-label": Object.keys(labels)
      .sort()
      .map((key) => `${key}=${labels[key]}`),
    ...(node.taints.length > 0 ? { "node-taint": node.taints.map(taintString) } : {}),
    "kubelet-arg": [...k.kubeletArgs],
    "protect-kernel-defaults": k.protectKernelDefaults,
  };
  if (node.role === "agent") {
    return { server: plan.serverUrl, ...common };
  }
  const first = node.name === plan.firstServer.name;
  return {
    ...(first ? { "cluster-init": true } : { server: plan.serverUrl }),
    ...common,
    "cluster-cidr": k.clusterCidr,
    "service-cidr": k.serviceCidr,
    "cluster-dns": k.clusterDns,
    disable: [...k.disable],
    "secrets-encryption": k.secretsEncryption,
    // vxlan is k3s's default; another backend is a critical flag (same on every server).
    ...(k.flannelBackend !== "vxlan" ? { "flannel-backend": k.flannelBackend } : {}),
    "tls-san": unique([node.address, plan.firstServer.address, ...k.tlsSan]),
    "write-kubeconfig-mode": "0600",
  };
}

export function renderK3sConfig(fleet: Fleet, plan: DeploymentPlan, node: NodeSpec): string {
  return stringify(k3sConfigObject(fleet, plan, node), { lineWidth: 0 });
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
