import { parse } from "yaml";
import { parseFleet } from "../../lib/model/parse";
import { agentPredecessor, deploymentPlan, teardownOrder } from "../../lib/plan/plan";
import {
  k3sConfigObject,
  K3S_JOIN_DROPIN_PATH,
  K3S_REGISTRATION_DROPIN_PATH,
  nodeLabels,
  renderJoinDropIn,
  renderK3sConfig,
  renderRegistrationDropIn,
} from "../../lib/render/k3s-config";
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

  test("first server: seed 000 keys; neither cluster-init nor a server URL (the join chooses them)", () => {
    const c = cfg("srv1");
    expect(c["cluster-init"]).toBeUndefined();
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

  test("further servers share the cluster-wide flags and name no other server: the first server is not special", () => {
    const first = cfg("srv1");
    const c = cfg("srv2");
    expect(c["cluster-init"]).toBeUndefined();
    expect(c.server).toBeUndefined();
    for (const k of ["cluster-cidr", "service-cidr", "cluster-dns", "disable", "secrets-encryption"]) expect(c[k]).toEqual(first[k]);
    expect(c["tls-san"]).toEqual(["10.0.0.12"]);
    // no node's config mentions the first server's address but the first server's own
    for (const n of fleet.nodes.filter((x) => x.name !== "srv1")) expect(renderK3sConfig(fleet, plan, n)).not.toContain("10.0.0.11");
    // another first server (the order of nodes[] changed) changes no node's config
    const reordered = { ...fleet, nodes: [...fleet.nodes].reverse() };
    const plan2 = deploymentPlan(reordered);
    expect(plan2.firstServer.name).not.toBe("srv1");
    for (const n of fleet.nodes) expect(renderK3sConfig(reordered, plan2, n)).toBe(renderK3sConfig(fleet, plan, n));
  });

  test("the join drop-in: a live server's URL, or cluster-init (golden)", () => {
    expect(K3S_JOIN_DROPIN_PATH).toBe("/etc/rancher/k3s/config.yaml.d/50-isar-k3s-join.yaml");
    expect(renderJoinDropIn({ server: "https://10.0.0.12:6443" })).toBe("server: https://10.0.0.12:6443\n");
    expect(renderJoinDropIn({ clusterInit: true })).toBe("cluster-init: true\n");
  });

  test("agents: no server URL, no labels or taints, no server-only flags", () => {
    const c = cfg("agent2");
    expect(c.server).toBeUndefined();
    expect(c["node-label"]).toBeUndefined();
    for (const k of ["cluster-init", "cluster-cidr", "disable", "secrets-encryption", "tls-san"]) expect(c[k]).toBeUndefined();
  });

  test("Jetson agents register with the GPU labels, user labels and taints (registration drop-in, golden), not through the image", () => {
    const n = byName("jetson1");
    expect(cfg("jetson1")["node-label"]).toBeUndefined();
    expect(cfg("jetson1")["node-taint"]).toBeUndefined();
    expect(renderRegistrationDropIn(nodeLabels(n), n.taints)).toBe(
      [
        "node-label:",
        "  - example.com/zone=line-1",
        "  - node.kubernetes.io/instance-type=jetson-orin",
        "  - nvidia.com/gpu=true",
        "node-taint:",
        "  - nvidia.com/gpu=true:NoSchedule",
        "",
      ].join("\n"),
    );
    expect(K3S_REGISTRATION_DROPIN_PATH).toBe("/etc/rancher/k3s/config.yaml.d/60-isar-k3s-registration.yaml");
  });

  test("a label or taint edit changes no image: every node file and the image digest stay the same", () => {
    for (const n of fleet.nodes) {
      const edited = {
        ...n,
        labels: { ...n.labels, "example.com/edited": "yes" },
        taints: [...n.taints, { key: "example.com/t", effect: "NoExecute" as const }],
      };
      const editedFleet = { ...fleet, nodes: fleet.nodes.map((x) => (x.name === n.name ? edited : x)) };
      expect(nodeFilesDigest(renderNodeFiles(editedFleet, deploymentPlan(editedFleet), edited))).toBe(nodeFilesDigest(renderNodeFiles(fleet, plan, n)));
    }
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
  test("each node gets its hostname, role, keys; modes are tight for secrets-adjacent files; hwrevision only in flashed images", () => {
    const files = renderNodeFiles(fleet, plan, fleet.nodes[3]);
    const get = (p: string) => files.find((f) => f.path === p)!;
    expect(get("/etc/hostname").content).toBe("jetson1\n");
    expect(get("/etc/k3s-role").content).toBe("agent\n");
    // a SWUpdate board's own /etc/hwrevision decides: its image never carries one
    expect(fleet.nodes[3].delivery.method).toBe("swupdate");
    expect(files.find((f) => f.path === "/etc/hwrevision")).toBeUndefined();
    expect(fleet.nodes[0].delivery.method).toBe("tpi");
    expect(renderNodeFiles(fleet, plan, fleet.nodes[0]).find((f) => f.path === "/etc/hwrevision")?.content).toBe(`${fleet.nodes[0].hardware} 1.0\n`);
    expect(get("/etc/ssh/isar-k3s/authorized_keys/deploy").mode).toBe(0o644);
    expect(get("/etc/rancher/k3s/config.yaml").mode).toBe(0o600);
    expect(files.map((f) => f.path)).toEqual([...files.map((f) => f.path)].sort());
  });
  test("digest: a label edit changes no node's digest (labels are applied through the API); a hostname edit changes exactly that node's", () => {
    const raw = validRaw();
    const before = parseFleet(raw);
    raw.nodes[3].labels = { "example.com/zone": "line-2" };
    const relabelled = parseFleet(raw);
    raw.nodes[3].hostname = "renamed";
    const renamed = parseFleet(raw);
    const d = (f: typeof before) => f.nodes.map((n) => nodeFilesDigest(renderNodeFiles(f, deploymentPlan(f), n)));
    const b = d(before);
    expect(d(relabelled)).toEqual(b);
    expect(d(renamed).map((x, i) => x !== b[i])).toEqual([false, false, false, true]);
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
