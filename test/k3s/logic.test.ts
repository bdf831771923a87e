/**
 * Pure parts of the k3s join: Node JSON, label / taint reconciliation argv, spec checks, restart
 * decision, redaction, and the resource diff (what replaces, what updates in place).
 */
import { parse, stringify } from "yaml";
import { parseFleet } from "../../lib/model/parse";
import { deploymentPlan } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import {
  checkJoinSpec,
  chooseJoin,
  configNeedsRestart,
  installArgv,
  K3sError,
  legacyJoinTarget,
  NodeJoinSpec,
  PeerProbe,
  redact,
  UNKNOWN_CLUSTER,
} from "../../lib/k3s/join";
import { checkLabelsAndTaints, labelArgv, labelChange, parseNodeJson, taintArgv, taintChange } from "../../lib/k3s/node";
import { checkKubeconfig, checkNode, diffKubeconfig, diffNode, fromState, needsRejoin, recordedCluster, UNKNOWN } from "../../lib/k3s/k3s-provider";
import { validRaw } from "../model/fixtures";

const fleet = parseFleet(validRaw());
const plan = deploymentPlan(fleet);
const node = (n: string) => fleet.nodes.find((x) => x.name === n)!;

function spec(name: string): NodeJoinSpec {
  const n = node(name);
  return {
    node: n.name,
    hostname: n.hostname,
    role: n.role,
    config: renderK3sConfig(fleet, plan, n),
    labels: nodeLabels(n),
    taints: n.taints,
    joinTimeoutSeconds: 60,
    drainTimeoutSeconds: 30,
  };
}

describe("Node JSON", () => {
  const json = (ready: string | undefined, extra: object = {}) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "a1", labels: { "kubernetes.io/hostname": "a1", x: "1" } },
      spec: {
        taints: [
          { key: "k", value: "v", effect: "NoSchedule" },
          { key: "e", effect: "NoExecute" },
        ],
        ...extra,
      },
      status: {
        conditions:
          ready === undefined
            ? []
            : [
                { type: "MemoryPressure", status: "False" },
                { type: "Ready", status: ready, reason: "KubeletReady", message: "kubelet is posting ready status" },
              ],
      },
    });
  test("Ready condition, labels, taints", () => {
    const n = parseNodeJson(json("True"));
    expect(n).toMatchObject({ name: "a1", ready: true, labels: { x: "1" }, unschedulable: false });
    expect(n.taints).toEqual([
      { key: "k", value: "v", effect: "NoSchedule" },
      { key: "e", effect: "NoExecute" },
    ]);
    expect(parseNodeJson(json("False")).ready).toBe(false);
    expect(parseNodeJson(json("Unknown")).readyDetail).toMatch(/Ready=Unknown \(KubeletReady/);
    expect(parseNodeJson(json(undefined))).toMatchObject({ ready: false, readyDetail: "no Ready condition yet" });
    expect(parseNodeJson(json("True", { unschedulable: true })).unschedulable).toBe(true);
  });
  test("refuses what is not a Node", () => {
    expect(() => parseNodeJson("Error from server")).toThrow(/did not print JSON/);
    expect(() => parseNodeJson(JSON.stringify({ kind: "Pod", metadata: { name: "x" } }))).toThrow(/not a Node/);
  });
});

describe("labels and taints", () => {
  test("label change touches only managed keys", () => {
    const current = { "kubernetes.io/hostname": "a1", zone: "a", old: "1", foreign: "z" };
    const c = labelChange(current, { zone: "b", added: "y" }, ["zone", "old"]);
    expect(c).toEqual({ set: { zone: "b", added: "y" }, remove: ["old"] });
    expect(labelArgv("a1", c)).toEqual([["label", "node", "a1", "--overwrite", "added=y", "zone=b", "old-"]]);
    expect(labelArgv("a1", labelChange(current, { zone: "a" }, ["zone"]))).toEqual([]);
  });
  test("taint change: removals first, value changes overwrite, foreign taints kept", () => {
    const current = [
      { key: "gpu", value: "true", effect: "NoSchedule" as const },
      { key: "old", effect: "NoExecute" as const },
      { key: "node.kubernetes.io/unreachable", effect: "NoExecute" as const },
    ];
    const desired = [
      { key: "gpu", value: "false", effect: "NoSchedule" as const },
      { key: "new", effect: "PreferNoSchedule" as const },
    ];
    const c = taintChange(current, desired, [...current.slice(0, 2)]);
    expect(c.remove).toEqual([{ key: "old", effect: "NoExecute" }]);
    expect(c.set).toEqual(desired);
    expect(taintArgv("a1", c)).toEqual([
      ["taint", "node", "a1", "old:NoExecute-"],
      ["taint", "node", "a1", "--overwrite", "gpu=false:NoSchedule", "new:PreferNoSchedule"],
    ]);
  });
  test("label and taint syntax is checked (nothing reaches kubectl that it could read as a flag)", () => {
    expect(checkLabelsAndTaints({ "example.com/zone": "line-1", a: "" }, [{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }])).toEqual([]);
    const bad = checkLabelsAndTaints({ "--overwrite": "x", ok: "-bad", "Upper.Case/x": "y" }, [
      { key: "k", effect: "Sometimes" as never },
      { key: "d", effect: "NoSchedule" },
      { key: "d", effect: "NoSchedule" },
    ]);
    expect(bad.join("\n")).toMatch(/label key "--overwrite"/);
    expect(bad.join("\n")).toMatch(/value "-bad"/);
    expect(bad.join("\n")).toMatch(/prefix must be a DNS subdomain/);
    expect(bad.join("\n")).toMatch(/effect "Sometimes"/);
    expect(bad.join("\n")).toMatch(/taint d:NoSchedule is listed twice/);
  });
});

describe("join spec", () => {
  test("rendered configs of the fleet pass", () => {
    for (const n of fleet.nodes) expect(checkJoinSpec(spec(n.name))).toEqual([]);
  });
  test("a token in the config, a `server` or `cluster-init` in it (the join chooses them), a wrong node-name are refused", () => {
    const s = spec("srv2");
    expect(checkJoinSpec({ ...s, config: s.config + "token: abc\n" }).join()).toMatch(/token-file/);
    expect(checkJoinSpec({ ...s, config: s.config + "cluster-init: true\n" }).join()).toMatch(/sets `cluster-init`: the join chooses it/);
    expect(checkJoinSpec({ ...s, config: s.config + "server: https://10.0.0.11:6443\n" }).join()).toMatch(/sets `server`/);
    expect(checkJoinSpec({ ...s, hostname: "other" }).join()).toMatch(/node-name "srv2" differs/);
    expect(checkJoinSpec({ ...s, config: "::: [" }).join()).toMatch(/not valid YAML/);
    expect(checkJoinSpec({ ...s, joinTimeoutSeconds: 0 }).join()).toMatch(/joinTimeoutSeconds/);
  });
  test("restart only when more than the registration-only keys changed", () => {
    const a = spec("jetson1").config;
    // a config from state rendered before the join drop-in (server, node-label in it) needs no restart
    const legacy = stringify({ ...parse(a), server: "https://10.0.0.11:6443", "node-label": ["a=b"] });
    expect(configNeedsRestart(legacy, a)).toBe(false);
    // and rewriting it keeps how the node finds the cluster, in the join drop-in
    expect(legacyJoinTarget(legacy)).toEqual({ server: "https://10.0.0.11:6443" });
    expect(legacyJoinTarget(stringify({ ...parse(a), "cluster-init": true }))).toEqual({ clusterInit: true });
    expect(legacyJoinTarget(a)).toBeUndefined();
    const relabelled = renderK3sConfig(fleet, plan, { ...node("jetson1"), labels: { zone: "z" }, taints: [] });
    expect(configNeedsRestart(a, relabelled)).toBe(false);
    const moved = renderK3sConfig(fleet, plan, { ...node("jetson1"), address: "10.0.0.99" });
    expect(configNeedsRestart(a, moved)).toBe(true);
  });
  test("the install command carries the role, never a secret", () => {
    expect(installArgv({ role: "agent" })).toEqual(["env", "INSTALL_K3S_SKIP_DOWNLOAD=true", "INSTALL_K3S_EXEC=agent", "sh", "/usr/local/bin/k3s-install.sh"]);
  });
  test("errors are scrubbed of secrets", () => {
    const tok = "SuperSecretToken0123456789";
    expect(redact(`a ${tok} b ${tok}`, [tok, undefined])).toBe("a [redacted] b [redacted]");
    expect(new K3sError(`failed: ${tok}`, [tok]).message).toBe("failed: [redacted]");
  });
});

describe("resource diff", () => {
  const base = {
    resourceType: "K3sAgent",
    node: "jetson1",
    hostname: "jetson1",
    role: "agent",
    bootstrap: false,
    ssh: { address: "10.0.0.20", port: 22, user: "root" },
    servers: [{ node: "srv1", address: "10.0.0.11", ssh: { address: "10.0.0.11", port: 22, user: "root" } }],
    token: "t".repeat(48),
    config: spec("jetson1").config,
    labels: { a: "1" },
    taints: [],
    joinTimeoutSeconds: 60,
    drainTimeoutSeconds: 30,
    generation: "img-1",
  };
  test("no change, no diff", () => {
    expect(diffNode(base, { ...base })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  });
  test("labels, taints, config update in place (no rejoin)", () => {
    expect(diffNode(base, { ...base, labels: { a: "2" } })).toMatchObject({ changes: true, replaces: [] });
    expect(diffNode(base, { ...base, taints: [{ key: "x", effect: "NoSchedule" }] })).toMatchObject({ changes: true, replaces: [] });
    expect(diffNode(base, { ...base, drainTimeoutSeconds: 99 })).toMatchObject({ changes: true, replaces: [] });
  });
  test("a new image (re-flash) is an update that rejoins (the state keeps the cluster's identity); a new token or name replaces, deleting first", () => {
    expect(diffNode(base, { ...base, generation: "img-2" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(needsRejoin(base, { ...base, generation: "img-2" })).toBe(true);
    expect(needsRejoin(base, { ...base, labels: { a: "2" } })).toBe(false);
    // a role change is the same kind of update: old role out, new role in, one resource
    expect(diffNode(base, { ...base, role: "server" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: true });
    expect(needsRejoin(base, { ...base, role: "server" })).toBe(true);
    // the former resource types (aliases) are the same node: no change
    expect(diffNode(base, { ...base, resourceType: "K3sNode" }).changes).toBe(false);
    expect(diffNode(base, { ...base, generation: UNKNOWN })).toMatchObject({ changes: true, replaces: [] });
    expect(diffNode(base, { ...base, token: "u".repeat(48) }).replaces).toEqual(["token"]);
    expect(diffNode(base, { ...base, hostname: "j2" }).replaces).toEqual(["hostname"]);
    // another server's rebuild is no input of this node: only the list of servers, whose change is an update
    const moved = { ...base, servers: [{ ...base.servers[0], address: "10.0.0.12" }] };
    expect(diffNode(base, moved)).toMatchObject({ changes: true, replaces: [] });
    expect(needsRejoin(base, moved)).toBe(false);
  });
  test("the cluster recorded in state: none before a first join, the id after, 'unrecorded' for state from before ids were kept", () => {
    expect(recordedCluster(undefined)).toBe("");
    expect(recordedCluster({ joinId: "j" } as never)).toBe(UNKNOWN_CLUSTER);
    expect(recordedCluster({ joinId: "j", clusterId: "c" } as never)).toBe("c");
  });
  test("state written with `host` endpoints (before the one endpoint type) reads as the same endpoints: no diff", () => {
    const { servers: _servers, ...withoutServers } = base;
    const legacy = {
      ...withoutServers,
      ssh: { host: "10.0.0.20", port: 22, user: "root" },
      apiSsh: { host: "10.0.0.11", port: 22, user: "root", hostKey: "ssh-ed25519 K" },
    };
    const news = {
      ...base,
      servers: [{ node: "the first server", address: "10.0.0.11", ssh: { address: "10.0.0.11", port: 22, user: "root", hostKey: "ssh-ed25519 K" } }],
    };
    expect(diffNode(legacy, news).changes).toBe(true); // read as written, the endpoints differ
    expect(fromState(legacy).ssh).toEqual(base.ssh);
    // the first server of old state (apiSsh) becomes the one server it knows
    expect(diffNode(fromState(legacy), news)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    // a kubeconfig recorded when it was read from the first server (apiSsh) and re-read on every join (members)
    const kcLegacy = fromState({ resourceType: "K3sKubeconfig", apiSsh: legacy.apiSsh, server: "s", clusterName: "c", members: ["j1"] });
    expect((kcLegacy as Record<string, unknown>).servers).toEqual(news.servers);
    expect(diffKubeconfig(kcLegacy, { resourceType: "K3sKubeconfig", servers: news.servers, server: "s", clusterName: "c", cluster: "" }).changes).toBe(false);
    expect(fromState(base)).toEqual(base);
  });
  test("check tolerates unknown values in preview and reports real problems", () => {
    expect(checkNode({ ...base, token: UNKNOWN, generation: UNKNOWN }).failures).toEqual([]);
    expect(
      checkNode({ ...base, role: "master" })
        .failures.map((f) => f.reason)
        .join(),
    ).toMatch(/role must be "server" or "agent", got "master"/);
    // state of the former K3sServer / K3sAgent types checks as K3sNode does
    expect(checkNode({ ...base, resourceType: "K3sNode", role: "server" }).failures).toEqual([]);
    expect(checkNode({ ...base, token: "short" }).failures.map((f) => f.property)).toContain("token");
    expect(checkNode({ ...base, ssh: { address: "", port: 0, user: "root" } }).failures.map((f) => f.property)).toEqual(["ssh.address", "ssh.port"]);
    expect(checkNode({ ...base, servers: [] }).failures.map((f) => f.property)).toEqual(["servers"]);
    expect(checkNode({ ...base, servers: UNKNOWN }).failures).toEqual([]);
  });
});

describe("where a node joins (chooseJoin)", () => {
  const live = (node: string, clusterId = "c-1"): PeerProbe => ({ node, address: `10.0.0.${node.slice(-1)}`, state: "live", clusterId, detail: "live" });
  const down = (node: string, state: PeerProbe["state"]): PeerProbe => ({ node, address: `10.0.0.${node.slice(-1)}`, state, detail: state });
  const srv1 = { node: "srv1", role: "server" as const, bootstrap: true };
  test("through the first live member of the recorded cluster, whichever server that is", () => {
    const d = chooseJoin({ ...srv1, recordedCluster: "c-1", peers: [down("srv2", "unreachable"), live("srv3")] });
    expect(d).toMatchObject({ kind: "join", via: { node: "srv3" }, target: { server: "https://10.0.0.3:6443" } });
    // a never-joined node takes any live member
    expect(chooseJoin({ ...srv1, recordedCluster: "", peers: [live("srv2", "c-9")] })).toMatchObject({ kind: "join", via: { node: "srv2" } });
    expect(chooseJoin({ ...srv1, recordedCluster: UNKNOWN_CLUSTER, peers: [live("srv2", "c-9")] })).toMatchObject({ kind: "join" });
  });
  test("cluster-init only for the bootstrap server when nothing says a cluster exists", () => {
    const d = chooseJoin({ ...srv1, recordedCluster: "", peers: [down("srv2", "empty"), down("srv3", "unreachable")] });
    expect(d).toMatchObject({ kind: "init", target: { clusterInit: true } });
    expect((d as { warnings: string[] }).warnings.join()).toMatch(/srv3 unreachable: assumed to hold no cluster/);
    expect(chooseJoin({ ...srv1, recordedCluster: "", peers: [] })).toMatchObject({ kind: "init" });
  });
  test("never cluster-init against an existing cluster: refused with what was seen and the fix", () => {
    const recorded = chooseJoin({ ...srv1, recordedCluster: "c-1", peers: [down("srv2", "data"), down("srv3", "unreachable")] });
    expect(recorded.kind).toBe("refuse");
    expect((recorded as { reason: string }).reason).toMatch(
      /the cluster exists \(kube-system c-1, recorded in state when srv1 last joined\).*srv2 \(10.0.0.2\): data.*cluster-init would start a new, empty cluster. How to fix/,
    );
    const unrecorded = chooseJoin({ ...srv1, recordedCluster: UNKNOWN_CLUSTER, peers: [] });
    expect((unrecorded as { reason: string }).reason).toMatch(/no other server is configured.*cluster-init would start a new, empty cluster/);
    const data = chooseJoin({ ...srv1, recordedCluster: "", peers: [down("srv2", "data")] });
    expect((data as { reason: string }).reason).toMatch(/srv2 hold the cluster's data but do not answer/);
    const other = chooseJoin({ ...srv1, recordedCluster: "c-1", peers: [live("srv2", "c-2")] });
    expect((other as { reason: string }).reason).toMatch(/belong to another cluster/);
    expect(chooseJoin({ node: "srv2", role: "server", bootstrap: false, recordedCluster: "", peers: [down("srv1", "empty")] })).toMatchObject({
      kind: "refuse",
    });
    expect(chooseJoin({ node: "a1", role: "agent", bootstrap: false, recordedCluster: "", peers: [] })).toMatchObject({ kind: "refuse" });
  });
});

describe("kubeconfig diff: only what it contains", () => {
  const ref = (node: string, a: string, hostKey = "ssh-ed25519 K") => ({ node, address: a, ssh: { address: a, port: 22, user: "deploy", hostKey } });
  const olds = {
    resourceType: "K3sKubeconfig",
    servers: [ref("srv1", "10.0.0.11"), ref("srv2", "10.0.0.12")],
    server: "https://10.0.0.11:6443",
    clusterName: "lab",
    cluster: "",
    kubeconfig: "apiVersion: v1",
  };
  const inputs = { ...olds, kubeconfig: undefined };
  test("a member rejoining, a re-flashed server (new host key, unknown at preview), an added server, a new SSH key: no change", () => {
    for (const news of [
      inputs,
      { ...inputs, servers: [UNKNOWN, ref("srv2", "10.0.0.12")] },
      { ...inputs, servers: UNKNOWN },
      { ...inputs, servers: [ref("srv1", "10.0.0.11", "ssh-ed25519 NEW"), ref("srv2", "10.0.0.12"), ref("srv3", "10.0.0.13")] },
      { ...inputs, privateKey: UNKNOWN },
    ])
      expect(diffKubeconfig(olds, news)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
  });
  test("a new server URL, cluster name or cluster (new CA and credentials, or unknown at preview) re-reads it in place", () => {
    for (const news of [
      { ...inputs, server: "https://10.0.0.12:6443" },
      { ...inputs, clusterName: "lab2" },
      { ...inputs, cluster: "join-srv1-b" },
      { ...inputs, cluster: UNKNOWN },
    ])
      expect(diffKubeconfig(olds, news)).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
  });
  test("check: servers is a non-empty list of server references; unknowns pass at preview", () => {
    expect(checkKubeconfig({ ...inputs, servers: [UNKNOWN], cluster: UNKNOWN }).failures).toEqual([]);
    expect(checkKubeconfig({ ...inputs, servers: UNKNOWN }).failures).toEqual([]);
    expect(checkKubeconfig({ ...inputs, servers: [] }).failures.map((f) => f.property)).toEqual(["servers"]);
    expect(
      checkKubeconfig({ ...inputs, servers: [{ node: "srv1", address: "x", ssh: { address: "", port: 22, user: "deploy" } }] }).failures.map((f) => f.property),
    ).toEqual(["servers[0].ssh.address"]);
    const { cluster: _c, ...noCluster } = inputs;
    expect(checkKubeconfig(noCluster).inputs.cluster).toBe("");
  });
});
