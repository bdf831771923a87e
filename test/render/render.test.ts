import { parse } from "yaml";
import { parseFleet } from "../../lib/model/parse";
import { agentPredecessor, deploymentPlan, teardownOrder } from "../../lib/plan/plan";
import { k3sConfigObject, renderK3sConfig } from "../../lib/render/k3s-config";
import { rewriteKubeconfig } from "../../lib/render/kubeconfig";
import { renderNetworkd } from "../../lib/render/networkd";
import { nodeFilesDigest, renderNodeFiles } from "../../lib/render/node-files";
import { validRaw } from "../model/fixtures";

function fleetWithServerOrder() {
  const raw = validRaw();
  // servers srv1, srv2, srv3 (config order), agent jetson1, plus a second agent
  raw.nodes.push({
    name: "agent2",
    role: "agent",
    hardware: "x86-controller",
    address: "10.0.0.30",
    delivery: { method: "swupdate" },
    ssh: { hostKey: raw.authorizedKeys[0] },
  });
  return parseFleet(raw);
}

describe("deployment plan", () => {
  const fleet = fleetWithServerOrder();
  const plan = deploymentPlan(fleet);
  test("first server, then further servers one at a time, then agents in parallel", () => {
    expect(plan.firstServer.name).toBe("srv1");
    expect(plan.joiningServers.map((n) => n.name)).toEqual(["srv2", "srv3"]);
    expect(plan.phases.map((p) => [p.name, p.nodes.map((n) => n.name)])).toEqual([
      ["first-server", ["srv1"]],
      ["server-2", ["srv2"]],
      ["server-3", ["srv3"]],
      ["agents", ["jetson1", "agent2"]],
    ]);
    expect(plan.serverUrl).toBe("https://10.0.0.11:6443");
  });
  test("teardown: agents, then servers last-joined first", () => {
    expect(teardownOrder(plan).map((n) => n.name)).toEqual(["jetson1", "agent2", "srv3", "srv2", "srv1"]);
  });
  test("bounded agent parallelism chains agent i after agent i-max", () => {
    expect(agentPredecessor(plan, 0, 1)).toBeUndefined();
    expect(agentPredecessor(plan, 1, 1)?.name).toBe("jetson1");
    expect(agentPredecessor(plan, 1, 2)).toBeUndefined();
  });
});

describe("k3s config.yaml", () => {
  const fleet = fleetWithServerOrder();
  const plan = deploymentPlan(fleet);
  const byName = (n: string) => fleet.nodes.find((x) => x.name === n)!;
  const cfg = (n: string) => parse(renderK3sConfig(fleet, plan, byName(n)));

  test("first server: cluster-init, seed 000 keys, no server URL", () => {
    const c = cfg("srv1");
    expect(c["cluster-init"]).toBe(true);
    expect(c.server).toBeUndefined();
    expect(c.disable).toEqual(["traefik", "servicelb", "local-storage"]);
    expect(c["cluster-cidr"]).toBe("10.42.0.0/16");
    expect(c["service-cidr"]).toBe("10.43.0.0/16");
    expect(c["protect-kernel-defaults"]).toBe(true);
    expect(c["secrets-encryption"]).toBe(true);
    expect(c["kubelet-arg"]).toEqual(expect.arrayContaining(["max-pods=50", "eviction-hard=memory.available<100Mi,nodefs.available<10%"]));
    expect(c["node-ip"]).toBe("10.0.0.11");
    expect(c["tls-san"]).toEqual(["10.0.0.11"]);
    expect(c["write-kubeconfig-mode"]).toBe("0600");
  });

  test("further servers point at the first and share its cluster-wide flags", () => {
    const first = cfg("srv1");
    const c = cfg("srv2");
    expect(c["cluster-init"]).toBeUndefined();
    expect(c.server).toBe("https://10.0.0.11:6443");
    for (const k of ["cluster-cidr", "service-cidr", "cluster-dns", "disable", "secrets-encryption"]) expect(c[k]).toEqual(first[k]);
    expect(c["tls-san"]).toEqual(["10.0.0.12", "10.0.0.11"]);
  });

  test("agents: server URL, labels and taints, no server-only flags", () => {
    const c = cfg("agent2");
    expect(c.server).toBe("https://10.0.0.11:6443");
    expect(c["node-label"]).toEqual(["node.kubernetes.io/instance-type=edge"]);
    for (const k of ["cluster-init", "cluster-cidr", "disable", "secrets-encryption", "tls-san"]) expect(c[k]).toBeUndefined();
  });

  test("Jetson agents carry the GPU labels, user labels and taints", () => {
    const c = cfg("jetson1");
    expect(c["node-label"]).toEqual(["example.com/zone=line-1", "node.kubernetes.io/instance-type=jetson-orin", "nvidia.com/gpu=true"]);
    expect(c["node-taint"]).toEqual(["nvidia.com/gpu=true:NoSchedule"]);
  });

  test("the token is never rendered, only the token file path", () => {
    for (const n of fleet.nodes) {
      const o = k3sConfigObject(fleet, plan, n);
      expect(o.token).toBeUndefined();
      expect(o["agent-token"]).toBeUndefined();
      expect(o["token-file"]).toBe("/etc/rancher/k3s/token");
    }
  });
});

describe("networkd", () => {
  const fleet = fleetWithServerOrder();
  const node = fleet.nodes[0];
  test("simple: one .network with the address", () => {
    const files = renderNetworkd(fleet.network, node);
    expect(Object.keys(files)).toEqual(["/etc/systemd/network/10-eth1.network"]);
    expect(files["/etc/systemd/network/10-eth1.network"]).toContain("Address=10.0.0.11/24");
  });
  test("bonding-vlans: bond, members, two VLANs with the right addresses", () => {
    const net = { ...fleet.network, profile: "bonding-vlans" as const };
    const files = renderNetworkd(net, { ...node, storageAddress: "10.1.0.11" });
    expect(Object.keys(files)).toEqual([
      "/etc/systemd/network/05-bond0.netdev",
      "/etc/systemd/network/06-eth1.network",
      "/etc/systemd/network/06-eth2.network",
      "/etc/systemd/network/10-bond0.network",
      "/etc/systemd/network/20-bond0.100.netdev",
      "/etc/systemd/network/20-bond0.200.netdev",
      "/etc/systemd/network/30-bond0.100.network",
      "/etc/systemd/network/30-bond0.200.network",
    ]);
    expect(files["/etc/systemd/network/20-bond0.200.netdev"]).toMatch(/Kind=vlan\n\n\[VLAN\]\nId=200/);
    expect(files["/etc/systemd/network/30-bond0.200.network"]).toContain("Address=10.0.0.11/24");
    expect(files["/etc/systemd/network/30-bond0.100.network"]).toContain("Address=10.1.0.11/24");
    expect(files["/etc/systemd/network/06-eth2.network"]).toContain("Bond=bond0");
  });
});

describe("node files", () => {
  const fleet = fleetWithServerOrder();
  const plan = deploymentPlan(fleet);
  test("each node gets its hostname, role, hwrevision, keys; modes are tight for secrets-adjacent files", () => {
    const files = renderNodeFiles(fleet, plan, fleet.nodes[3]);
    const get = (p: string) => files.find((f) => f.path === p)!;
    expect(get("/etc/hostname").content).toBe("jetson1\n");
    expect(get("/etc/k3s-role").content).toBe("agent\n");
    expect(get("/etc/hwrevision").content).toBe("jetson-orin-nano 1.0\n");
    expect(get("/etc/ssh/isar-k3s/authorized_keys/deploy").mode).toBe(0o644);
    expect(get("/etc/rancher/k3s/config.yaml").mode).toBe(0o600);
    expect(files.map((f) => f.path)).toEqual([...files.map((f) => f.path)].sort());
  });
  test("digest changes for exactly the node whose label changed", () => {
    const raw = validRaw();
    const before = parseFleet(raw);
    raw.nodes[3].labels = { "example.com/zone": "line-2" };
    const after = parseFleet(raw);
    const d = (f: typeof before) => f.nodes.map((n) => nodeFilesDigest(renderNodeFiles(f, deploymentPlan(f), n)));
    const [b, a] = [d(before), d(after)];
    expect(a.map((x, i) => x !== b[i])).toEqual([false, false, false, true]);
  });
});

describe("kubeconfig rewrite", () => {
  // A certificate blob containing "default" and "127.0.0.1" to prove we don't string-replace.
  const tricky = Buffer.from("-----BEGIN CERTIFICATE-----\ndefault 127.0.0.1 default\n-----END CERTIFICATE-----\n").toString("base64");
  const k3sYaml = `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: ${tricky}
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: ${tricky}
    client-key-data: ${tricky}
`;
  test("server URL and names change, certificate data is untouched", () => {
    const out = parse(rewriteKubeconfig(k3sYaml, { server: "https://10.0.0.11:6443", name: "dev" }));
    expect(out.clusters[0].cluster.server).toBe("https://10.0.0.11:6443");
    expect(out.clusters[0].name).toBe("dev");
    expect(out.users[0].name).toBe("dev");
    expect(out.contexts[0]).toEqual({ name: "dev", context: { cluster: "dev", user: "dev" } });
    expect(out["current-context"]).toBe("dev");
    expect(out.clusters[0].cluster["certificate-authority-data"]).toBe(tricky);
    expect(out.users[0].user["client-key-data"]).toBe(tricky);
  });
  test("refuses input it cannot rewrite safely, without echoing it", () => {
    const twoClusters = k3sYaml.replace("clusters:\n", "clusters:\n- cluster: {server: x}\n  name: other\n");
    expect(() => rewriteKubeconfig(twoClusters, { server: "s", name: "n" })).toThrow(/exactly one entry in clusters, found 2/);
    try {
      rewriteKubeconfig("users: [", { server: "s", name: "n" });
      throw new Error("should have thrown");
    } catch (e) {
      expect((e as Error).message).not.toContain("users: [");
      expect((e as Error).message).toMatch(/not valid YAML/);
    }
  });
});
