/**
 * Pure parts of the k3s join: Node JSON, label / taint reconciliation argv, spec checks, restart
 * decision, redaction, and the resource diff (what replaces, what updates in place).
 */
import { parseFleet } from "../../lib/model/parse";
import { deploymentPlan } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { checkJoinSpec, configNeedsRestart, installArgv, K3sError, NodeJoinSpec, redact } from "../../lib/k3s/join";
import { checkLabelsAndTaints, labelArgv, labelChange, parseNodeJson, taintArgv, taintChange } from "../../lib/k3s/node";
import { checkNode, diffKubeconfig, diffNode, fromState, UNKNOWN } from "../../lib/k3s/k3s-provider";
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
    firstServer: n.name === plan.firstServer.name,
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
  test("a token in the config, a missing cluster-init or server, a wrong node-name are refused", () => {
    const s = spec("srv2");
    expect(checkJoinSpec({ ...s, config: s.config + "token: abc\n" }).join()).toMatch(/token-file/);
    expect(checkJoinSpec({ ...s, firstServer: true }).join()).toMatch(/cluster-init/);
    expect(checkJoinSpec({ ...spec("srv1"), firstServer: false }).join()).toMatch(/server: https/);
    expect(checkJoinSpec({ ...s, hostname: "other" }).join()).toMatch(/node-name "srv2" differs/);
    expect(checkJoinSpec({ ...s, config: "::: [" }).join()).toMatch(/not valid YAML/);
    expect(checkJoinSpec({ ...s, joinTimeoutSeconds: 0 }).join()).toMatch(/joinTimeoutSeconds/);
  });
  test("restart only when more than node-label / node-taint changed", () => {
    const a = spec("jetson1").config;
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
    firstServer: false,
    ssh: { address: "10.0.0.20", port: 22, user: "root" },
    apiSsh: { address: "10.0.0.11", port: 22, user: "root" },
    token: "t".repeat(48),
    config: spec("jetson1").config,
    labels: { a: "1" },
    taints: [],
    joinTimeoutSeconds: 60,
    drainTimeoutSeconds: 30,
    generation: "img-1",
    cluster: "join-srv1",
  };
  test("no change, no diff", () => {
    expect(diffNode(base, { ...base })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
  });
  test("labels, taints, config update in place (no rejoin)", () => {
    expect(diffNode(base, { ...base, labels: { a: "2" } })).toMatchObject({ changes: true, replaces: [] });
    expect(diffNode(base, { ...base, taints: [{ key: "x", effect: "NoSchedule" }] })).toMatchObject({ changes: true, replaces: [] });
    expect(diffNode(base, { ...base, drainTimeoutSeconds: 99 })).toMatchObject({ changes: true, replaces: [] });
  });
  test("a new image (re-flash), a new token, a rebuilt first server, a renamed node replace, deleting first", () => {
    expect(diffNode(base, { ...base, generation: "img-2" })).toEqual({ changes: true, replaces: ["generation"], deleteBeforeReplace: true });
    expect(diffNode(base, { ...base, generation: UNKNOWN }).replaces).toEqual(["generation"]);
    expect(diffNode(base, { ...base, token: "u".repeat(48) }).replaces).toEqual(["token"]);
    expect(diffNode(base, { ...base, cluster: "join-srv1-b" }).replaces).toEqual(["cluster"]);
    expect(diffNode(base, { ...base, hostname: "j2" }).replaces).toEqual(["hostname"]);
  });
  test("state written with `host` endpoints (before the one endpoint type) reads as the same endpoints: no diff", () => {
    const legacy = {
      ...base,
      ssh: { host: "10.0.0.20", port: 22, user: "root" },
      apiSsh: { host: "10.0.0.11", port: 22, user: "root", hostKey: "ssh-ed25519 K" },
    };
    const news = { ...base, apiSsh: { ...base.apiSsh, hostKey: "ssh-ed25519 K" } };
    expect(diffNode(legacy, news).changes).toBe(true); // read as written, the endpoints differ
    expect(fromState(legacy).ssh).toEqual(base.ssh);
    expect(diffNode(fromState(legacy), news)).toEqual({ changes: false, replaces: [], deleteBeforeReplace: true });
    expect(diffKubeconfig(fromState({ apiSsh: legacy.apiSsh, server: "s" }), { apiSsh: news.apiSsh, server: "s" }).changes).toBe(false);
    expect(fromState(base)).toEqual(base);
  });
  test("check tolerates unknown values in preview and reports real problems", () => {
    expect(checkNode({ ...base, token: UNKNOWN, generation: UNKNOWN }).failures).toEqual([]);
    expect(
      checkNode({ ...base, role: "server" })
        .failures.map((f) => f.reason)
        .join(),
    ).toMatch(/K3sAgent needs role agent/);
    expect(checkNode({ ...base, token: "short" }).failures.map((f) => f.property)).toContain("token");
    expect(checkNode({ ...base, ssh: { address: "", port: 0, user: "root" } }).failures.map((f) => f.property)).toEqual(["ssh.address", "ssh.port"]);
  });
});
