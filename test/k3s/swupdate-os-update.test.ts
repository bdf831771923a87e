/**
 * OS update of SWUpdate nodes in a real-Kubernetes lab (issue 15, item 4): three servers (s1, s2 plain,
 * j1 a SWUpdate server) and a SWUpdate agent j2, each SWUpdate board with an A/B root and a persistent
 * data partition (a disk no bundle writes) provisioned with its hwrevision. The images carry the data
 * partition's units (lib/render/persist.ts) and the SWUpdate certificate; every bundle passes the real
 * `swupdate -c`, and the real swupdate on the board installs it.
 *
 * An OS update (installBundle: write the other root, reboot into a new root file system that has none of
 * the old one's files, k3s's units included) followed by the k3s resource's update (a changed `image`
 * input: resumeNode) must bring the same member back:
 * - no replace in the k3s resource's diff, the Node keeps its UID (never deleted), its node-password
 *   Secret too, no "Node password rejected", no new etcd learner;
 * - the server's etcd member id is unchanged and every member is started;
 * - the node is Ready after the reboot; a canary ConfigMap survives;
 * - the API, polled through s1 every 0.5 s, stays available while j1 updates (measured and printed);
 * - with the data partition gone, the resume refuses, naming the node, what is missing and the fix.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import type { Lab } from "../../lab/lab";
import { parseFleet } from "../../lib/model/parse";
import type { Fleet, NodeSpec } from "../../lib/model/types";
import { deploymentPlan, DeploymentPlan } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { renderPersistFiles } from "../../lib/render/persist";
import { RootShell } from "../../lib/k3s/join";
import {
  createKubeconfig,
  createNode,
  Deps,
  diffNode,
  K3sNodeInputs,
  K3sNodeOutputs,
  needsRejoin,
  readNode,
  updateNodeResource,
} from "../../lib/k3s/k3s-provider";
import { installBundle, SwupdateSpec } from "../../lib/delivery/swupdate";
import { buildBundle } from "../../lib/swupdate/bundle";
import { connectSsh } from "../../lib/transport/ssh";
import { makeNodeImage, makeSigner, Signer, TestImage } from "../delivery/labutil";
import { swupdateCheck } from "../swupdate/helpers";
import { startK3sLab } from "./labk3s";
import { validRaw } from "../model/fixtures";

jest.setTimeout(900_000);

const HW = "jetson-orin-nano";
const PART = 24 << 20;
const TOKEN = crypto.randomBytes(30).toString("hex").slice(0, 40) + "Zq9x8w7v";
const started = Date.now();
let lab: Lab;
let dir: string;
let cluster: string;
let fleet: Fleet;
let plan: DeploymentPlan;
let signer: Signer;
let certPem: string;
const logs: string[] = [];
const outs: Record<string, K3sNodeOutputs> = {};
const deps: Deps = { pollMs: 300, goneAfterMs: 3000, log: (m) => logs.push(m) };

interface Bundle {
  path: string;
  sha256: string;
  image: TestImage;
}

const node = (name: string): NodeSpec => fleet.nodes.find((n) => n.name === name)!;

function inputs(n: NodeSpec, over: Partial<K3sNodeInputs> = {}): K3sNodeInputs {
  const h = lab.hosts[n.name];
  const ep = (name: string) => ({ address: lab.hosts[name].address, port: lab.hosts[name].port, user: lab.hosts[name].user, hostKey: lab.hosts[name].hostKey });
  return {
    resourceType: "K3sNode",
    node: n.name,
    hostname: n.hostname,
    role: n.role,
    bootstrap: n.name === plan.firstServer.name,
    ssh: { address: h.address, port: h.port, user: h.user, hostKey: h.hostKey },
    servers: [plan.firstServer, ...plan.joiningServers].map((s) => ({ node: s.name, address: s.address, ssh: ep(s.name) })),
    privateKey: lab.deployKey.privateKey,
    token: TOKEN,
    config: renderK3sConfig(fleet, plan, n),
    labels: nodeLabels(n),
    taints: n.taints,
    joinTimeoutSeconds: fleet.k3s.joinTimeoutSeconds,
    drainTimeoutSeconds: fleet.k3s.drainTimeoutSeconds,
    // as components/fleet.ts: a SWUpdate node's generation is its rejoin counter, its image a plain input
    generation: n.delivery.method === "swupdate" ? `rejoin-${n.rejoin}` : "image-1",
    dataDisks: n.dataDisks,
    ...over,
  };
}

async function onNode<T>(name: string, fn: (s: RootShell) => Promise<T>): Promise<T> {
  const h = lab.hosts[name];
  const c = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 20_000 });
  try {
    return await fn(new RootShell(c, ["sudo", "-n"]));
  } finally {
    await c.close();
  }
}

async function kubectl(args: string[]): Promise<string> {
  return onNode("s1", async (s) => (await s.check(["k3s", "kubectl", ...args], { timeoutMs: 60_000 })).stdout.toString("utf8"));
}
async function uidOf(kind: string, name: string, ns?: string): Promise<string> {
  return (await kubectl(["get", kind, name, ...(ns ? ["-n", ns] : []), "-o", "jsonpath={.metadata.uid}"])).trim();
}
async function ready(name: string): Promise<boolean> {
  const s = await kubectl(["get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
  return s.trim() === "True";
}

/** `etcdctl member list` through s1's own member: name (k3s: <hostname>-<suffix>) → {id, status}. */
async function etcdMembers(): Promise<Record<string, { id: string; status: string; learner: boolean }>> {
  const tls = "/var/lib/rancher/k3s/server/tls/etcd";
  const out = await onNode("s1", async (s) =>
    (
      await s.check(
        [
          "/opt/lab-k8s/bin/etcdctl",
          `--endpoints=https://${lab.hosts.s1.address}:2379`,
          `--cacert=${tls}/server-ca.crt`,
          `--cert=${tls}/client.crt`,
          `--key=${tls}/client.key`,
          "member",
          "list",
        ],
        { timeoutMs: 30_000 },
      )
    ).stdout.toString("utf8"),
  );
  const m: Record<string, { id: string; status: string; learner: boolean }> = {};
  for (const l of out.trim().split("\n")) {
    const f = l.split(", ");
    m[f[2].replace(/-[0-9a-f]{8}$/, "")] = { id: f[0], status: f[1], learner: f[5] === "true" };
  }
  return m;
}

function joinEvents(nodeName: string, after: number): string[] {
  const f = path.join(cluster, "join.log");
  return fs
    .readFileSync(f, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tsMs: number; node: string; event: string })
    .filter((e) => e.node === nodeName && e.tsMs >= after)
    .map((e) => e.event);
}

async function makeBundle(n: NodeSpec, version: string, slot: "main" | "alt"): Promise<Bundle> {
  const extraFiles = { ...renderPersistFiles(n), "/etc/swupdate/swupdate.pem": signer.cert };
  const image = await makeNodeImage(dir, {
    name: `${n.name}-${version}`,
    hostname: n.hostname,
    authorizedKey: lab.deployKey.publicKey,
    deployUser: "deploy",
    hwRevision: false,
    layout: "bare",
    sizeMiB: 16,
    extraFiles,
  });
  const b = await buildBundle({
    hardware: HW,
    hwRevisions: ["1.0"],
    version,
    images: [{ path: image.path, kind: "rootfs", name: "rootfs.ext4", sha256: image.sha256 }],
    selection: { set: "stable", rootDevices: { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" } },
    signing: "cms",
    key: signer.key,
    cert: signer.cert,
    postUpdate: false,
    outPath: path.join(dir, "bundles", `${n.name}-${version}.swu`),
  });
  const check = await swupdateCheck(b.path, certPem, HW, "1.0", { select: `stable,${slot}` });
  expect({ bundle: `${n.name}-${version}`, accepted: check.accepted }).toEqual({ bundle: `${n.name}-${version}`, accepted: true });
  return { path: b.path, sha256: b.sha256, image };
}

function swSpec(name: string, b: Bundle, slot: "main" | "alt"): SwupdateSpec {
  const h = lab.hosts[name];
  return {
    nodeName: name,
    node: { address: h.address, port: h.port, user: h.user, hostKey: h.hostKey },
    hardware: HW,
    hwRevision: "1.0",
    selection: `stable,${slot}`,
    bundle: { path: b.path, sha256: b.sha256 },
    imageId: b.image.imageId,
    bootTimeoutSeconds: 60,
    connectTimeoutSeconds: 20,
    installTimeoutSeconds: 120,
  };
}

/** Poll GET /readyz through s1 every 0.5 s with the cluster's admin kubeconfig; stop() gives the polls. */
function pollReadyz(kubeconfig: string): { stop: () => Promise<{ polls: number; failed: number; longestOutageS: number }> } {
  const doc = parseYaml(kubeconfig);
  const b64 = (s: string) => Buffer.from(s, "base64");
  const agent = new https.Agent({
    ca: b64(doc.clusters[0].cluster["certificate-authority-data"]),
    cert: b64(doc.users[0].user["client-certificate-data"]),
    key: b64(doc.users[0].user["client-key-data"]),
    keepAlive: false,
  });
  const url = `https://${lab.hosts.s1.address}:6443/readyz`;
  const results: { t: number; ok: boolean }[] = [];
  let running = true;
  const one = () =>
    new Promise<boolean>((resolve) => {
      const req = https.get(url, { agent, timeout: 2000 }, (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve(res.statusCode === 200 && body === "ok"));
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", () => resolve(false));
    });
  const loop = (async () => {
    while (running) {
      const t = Date.now();
      results.push({ t, ok: await one() });
      await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - t))));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      let longest = 0;
      let since: number | undefined;
      for (const r of results) {
        if (!r.ok && since === undefined) since = r.t;
        if (r.ok && since !== undefined) {
          longest = Math.max(longest, r.t - since);
          since = undefined;
        }
      }
      if (since !== undefined) longest = Math.max(longest, Date.now() - since);
      return { polls: results.length, failed: results.filter((r) => !r.ok).length, longestOutageS: longest / 1000 };
    },
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-swu-"));
  signer = await makeSigner(dir, "fleet-signer");
  certPem = path.join(dir, "fleet-signer.pem");
  fs.writeFileSync(certPem, signer.cert);
  const board = (name: string) => ({
    name,
    role: "node" as const,
    user: "deploy",
    swupdate: { devices: { mmcblk0p1: PART, mmcblk0p2: PART }, certificate: signer.cert },
    hwRevision: `${HW} 1.0`,
    disks: { mmcblk0p3: { sizeBytes: 1 << 30, filesystem: "ext4" as const, files: { hwrevision: `${HW} 1.0\n` } } },
  });
  const k3sLab = await startK3sLab(
    [{ name: "s1", role: "node", user: "deploy" }, { name: "s2", role: "node", user: "deploy" }, board("j1"), board("j2")],
    path.join(dir, "lab"),
    { K3S_SIM_START_TIMEOUT_SECONDS: "150", K3S_SIM_JOIN_SECONDS: "0.5", K3S_SIM_GRACE_SECONDS: "10", K3S_SIM_LEASE_SECONDS: "4" },
  );
  lab = k3sLab.lab;
  cluster = k3sLab.clusterDir;
  const raw = validRaw();
  const ep = (n: string) => ({ user: lab.hosts[n].user, port: lab.hosts[n].port, hostKey: lab.hosts[n].hostKey });
  const sw = { method: "swupdate", selection: "stable,main", altRootDevice: "/dev/mmcblk0p2", dataDevice: "/dev/mmcblk0p3" };
  fleet = parseFleet({
    ...raw,
    clusterName: "k3s-swu",
    nodes: [
      { name: "s1", role: "server", hardware: "x86-controller", address: lab.hosts.s1.address, delivery: { method: "swupdate" }, ssh: ep("s1") },
      { name: "s2", role: "server", hardware: "x86-controller", address: lab.hosts.s2.address, delivery: { method: "swupdate" }, ssh: ep("s2") },
      { name: "j1", role: "server", hardware: HW, address: lab.hosts.j1.address, delivery: sw, ssh: ep("j1") },
      { name: "j2", role: "agent", hardware: HW, address: lab.hosts.j2.address, delivery: sw, ssh: ep("j2") },
    ],
    k3s: { joinTimeoutSeconds: 240, drainTimeoutSeconds: 10 },
    authorizedKeys: [lab.deployKey.publicKey],
  });
  plan = deploymentPlan(fleet);
});

afterAll(async () => {
  await lab?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  console.log(`swupdate OS update suite: wall time ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

const v1: Record<string, Bundle> = {};

test("first image with the data partition on the SWUpdate boards, then the cluster joins: s1, s2, j1 (servers), j2 (agent)", async () => {
  for (const n of ["j1", "j2"]) {
    v1[n] = await makeBundle(node(n), "1.0.1", "main");
    const r = await installBundle(swSpec(n, v1[n], "main"), { privateKey: lab.deployKey.privateKey });
    expect(r.runningImageId).toBe(v1[n].image.imageId);
    const mounts = await onNode(n, async (s) => (await s.check(["findmnt", "-rn", "-o", "TARGET"])).stdout.toString());
    expect(mounts.split("\n")).toEqual(expect.arrayContaining(["/var/lib/isar-k3s-data", "/var/lib/rancher", "/etc/rancher", "/etc/hwrevision"]));
  }
  for (const n of ["s1", "s2", "j1", "j2"]) {
    const image = node(n).delivery.method === "swupdate" && v1[n] ? v1[n].image.imageId : "";
    outs[n] = await createNode(inputs(node(n), { image }), deps);
  }
  for (const n of ["s1", "s2", "j1", "j2"]) expect({ n, ready: await ready(n) }).toEqual({ n, ready: true });
  const members = await etcdMembers();
  expect(Object.keys(members).sort()).toEqual(["j1", "s1", "s2"]);
  await kubectl(["create", "configmap", "canary", "-n", "default", "--from-literal=proof=kept"]);
});

async function osUpdate(
  name: string,
  version: string,
  measure: boolean,
): Promise<{ seconds: number; readyz?: { polls: number; failed: number; longestOutageS: number } }> {
  const n = node(name);
  const nodeUid = await uidOf("node", name);
  const pwUid = await uidOf("secret", `${name}.node-password.k3s`, "kube-system");
  const canary = await uidOf("configmap", "canary", "default");
  const membersBefore = await etcdMembers();
  const b = await makeBundle(n, version, "alt");
  const kc = measure
    ? (
        await createKubeconfig(
          {
            resourceType: "K3sKubeconfig",
            servers: [inputs(node("s1")).servers[0]],
            privateKey: lab.deployKey.privateKey,
            server: `https://${lab.hosts.s1.address}:6443`,
            clusterName: fleet.clusterName,
            cluster: "",
          },
          deps,
        )
      ).kubeconfig
    : undefined;
  const poll = kc ? pollReadyz(kc) : undefined;
  const t0 = Date.now();
  // the delivery: the real swupdate on the board writes the other root; reboot into a new root file system
  const r = await installBundle(swSpec(name, b, "alt"), { privateKey: lab.deployKey.privateKey });
  expect(r.runningImageId).toBe(b.image.imageId);
  // the old root file system's k3s units are gone; its state is not
  await onNode(name, async (s) => {
    expect((await s.run(["test", "-e", `/etc/systemd/system/${n.role === "server" ? "k3s" : "k3s-agent"}.service`])).code).toBe(1);
    expect((await s.run(["test", "-s", "/etc/rancher/node/password"])).code).toBe(0);
  });
  // the k3s resource: the generation is unchanged, only its image input: an update, not a replacement
  const news = inputs(n, { image: b.image.imageId });
  const d = diffNode(outs[name] as unknown as Record<string, unknown>, news as unknown as Record<string, unknown>);
  expect(d).toMatchObject({ changes: true, replaces: [] });
  expect(needsRejoin(outs[name] as unknown as Record<string, unknown>, news as unknown as Record<string, unknown>)).toBe(false);
  outs[name] = await updateNodeResource(outs[name], news, deps);
  const seconds = (Date.now() - t0) / 1000;
  const readyz = await poll?.stop();

  expect(await ready(name)).toBe(true);
  expect(await uidOf("node", name)).toBe(nodeUid);
  expect(await uidOf("secret", `${name}.node-password.k3s`, "kube-system")).toBe(pwUid);
  expect(await uidOf("configmap", "canary", "default")).toBe(canary);
  expect((await kubectl(["get", "configmap", "canary", "-n", "default", "-o", "jsonpath={.data.proof}"])).trim()).toBe("kept");
  const events = joinEvents(name, t0);
  expect(events).not.toContain("rejected");
  expect(events).not.toContain("etcd-learner");
  const membersAfter = await etcdMembers();
  expect(membersAfter).toEqual(membersBefore);
  for (const m of Object.values(membersAfter)) expect(m).toMatchObject({ status: "started", learner: false });
  // a refresh still finds this join on the node (its marker lives on the data partition)
  expect(await readNode(outs[name], deps)).toMatchObject({ joinId: outs[name].joinId });
  expect(logs.join("\n")).toMatch(
    new RegExp(`${name}: new OS image ${b.image.imageId}, k3s state kept on the data partition: restarting k3s as the same member \\(no rejoin\\)`),
  );
  return { seconds, readyz };
}

test("OS update of the SWUpdate agent: same Node (UID), same node password, Ready again, canary kept, no rejoin", async () => {
  const r = await osUpdate("j2", "1.0.2", false);
  console.log(`j2 (agent) OS update to Ready: ${r.seconds.toFixed(1)} s`);
});

test("OS update of the SWUpdate server: same Node, same etcd member id, Ready again, canary kept; the API through s1 stays available", async () => {
  const r = await osUpdate("j1", "1.0.2", true);
  console.log(
    `j1 (server) OS update to Ready: ${r.seconds.toFixed(1)} s; /readyz through s1 every 0.5 s: ${r.readyz!.polls} polls, ${r.readyz!.failed} failed, longest outage ${r.readyz!.longestOutageS.toFixed(1)} s`,
  );
  expect(r.readyz!.polls).toBeGreaterThan(10);
  expect(r.readyz!.failed).toBe(0);
});

test("an OS update that lost the data partition: the resume refuses, naming the node, what is missing and the fix; the cluster is untouched", async () => {
  const uid = await uidOf("node", "j2");
  await lab.setDiskAttached("j2", "mmcblk0p3", false);
  await lab.reboot("j2");
  const err = await updateNodeResource(outs.j2, inputs(node("j2"), { image: "image-without-its-data" }), deps).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err?.message).toMatch(
    /^k3s agent j2: the node runs image image-without-its-data but its k3s state is gone \(\/etc\/rancher\/node\/password, \/var\/lib\/rancher\/k3s\/agent missing\), so it cannot come back as the same cluster member; nothing was changed in the cluster\./,
  );
  expect(err?.message).toMatch(
    /How to fix: check that its persistent data partition \(nodes\[j2\]\.delivery\.dataDevice\) is attached and mounted .* increase nodes\[j2\]\.rejoin/,
  );
  expect(await uidOf("node", "j2")).toBe(uid);
});
