/**
 * The node's nftables ruleset (seed 003's security baseline), rendered per role from the fleet.
 *
 * Contract:
 * - One table of our own, `inet isar_k3s`, replaced atomically on every load (declare, delete,
 *   define): loading it never flushes the tables k3s, flannel and kube-proxy make (no `flush ruleset`).
 * - Only the input hook is filtered, policy drop. Accepted: established/related traffic, loopback,
 *   ICMP echo (and IPv6 neighbour discovery), SSH on the node's port from anywhere; on servers the
 *   k3s API (6443) from anywhere and etcd (2379–2380) from the servers only; the kubelet (10250) from
 *   the cluster's nodes and pods; the flannel backend's overlay port from the cluster's nodes (vxlan
 *   8472/udp, wireguard-native 51820/udp; host-gw and none open nothing). Everything else is dropped.
 *   Forwarding (pod traffic) and output are left to k3s.
 * - Deterministic: same fleet and node, same bytes. Tests load every rendered ruleset with the real
 *   `nft -c -f`.
 */
import { Fleet, FlannelBackend, NodeSpec } from "../model/types";

export const FIREWALL_PATH = "/etc/nftables.conf";
/** Debian's nftables.service loads /etc/nftables.conf; this drop-in enables it without a symlink. */
export const FIREWALL_ENABLE_PATH = "/etc/systemd/system/sysinit.target.d/isar-k3s-firewall.conf";

/** The overlay ports a flannel backend needs between nodes (k3s docs, "Inbound Rules for K3s Nodes"). */
export function flannelPorts(backend: FlannelBackend): { proto: "udp"; port: number; what: string }[] {
  switch (backend) {
    case "vxlan":
      return [{ proto: "udp", port: 8472, what: "flannel VXLAN" }];
    case "wireguard-native":
      return [{ proto: "udp", port: 51820, what: "flannel WireGuard (IPv4)" }];
    default:
      return [];
  }
}

function elements(addrs: string[]): string {
  return [...new Set(addrs)].sort(compareIPv4).join(", ");
}

function compareIPv4(a: string, b: string): number {
  const n = (s: string) => s.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a) - n(b);
}

export function renderFirewall(fleet: Fleet, node: NodeSpec): string {
  const servers = fleet.nodes.filter((n) => n.role === "server").map((n) => n.address);
  const nodes = fleet.nodes.map((n) => n.address);
  const L: string[] = [];
  L.push("#!/usr/sbin/nft -f");
  L.push(`# isar-k3s firewall of node ${node.name} (${node.role}), rendered from the fleet config: do not edit here.`);
  L.push("# Input is dropped unless accepted below; forwarding and output are left to k3s.");
  L.push("table inet isar_k3s");
  L.push("delete table inet isar_k3s");
  L.push("");
  L.push("table inet isar_k3s {");
  L.push("\tset cluster_nodes {");
  L.push("\t\ttype ipv4_addr");
  L.push(`\t\telements = { ${elements(nodes)} }`);
  L.push("\t}");
  L.push("");
  L.push("\tset servers {");
  L.push("\t\ttype ipv4_addr");
  L.push(`\t\telements = { ${elements(servers)} }`);
  L.push("\t}");
  L.push("");
  L.push("\tchain input {");
  L.push("\t\ttype filter hook input priority filter; policy drop;");
  L.push("\t\tct state established,related accept");
  L.push("\t\tct state invalid drop");
  L.push('\t\tiif "lo" accept');
  L.push("\t\ticmp type echo-request accept");
  L.push("\t\ticmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept");
  L.push(`\t\ttcp dport ${node.ssh.port} accept comment "SSH"`);
  if (node.role === "server") {
    L.push('\t\ttcp dport 6443 accept comment "k3s API server and supervisor"');
    L.push('\t\tip saddr @servers tcp dport 2379-2380 accept comment "etcd: servers only"');
  }
  L.push('\t\tip saddr @cluster_nodes tcp dport 10250 accept comment "kubelet from the nodes"');
  L.push(`\t\tip saddr ${fleet.k3s.clusterCidr} tcp dport 10250 accept comment "kubelet from pods (metrics-server)"`);
  for (const p of flannelPorts(fleet.k3s.flannelBackend)) {
    L.push(`\t\tip saddr @cluster_nodes ${p.proto} dport ${p.port} accept comment "${p.what}"`);
  }
  L.push('\t\tcounter comment "dropped by policy"');
  L.push("\t}");
  L.push("}");
  return L.join("\n") + "\n";
}

/** Enables Debian's nftables.service (which loads FIREWALL_PATH early, before the network is up). */
export function renderFirewallEnable(): string {
  return ["# isar-k3s: load /etc/nftables.conf at boot (what `systemctl enable nftables` would do).", "[Unit]", "Wants=nftables.service", ""].join("\n");
}
