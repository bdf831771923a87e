/**
 * lab/k3s end to end on one HA cluster of real components: two servers (etcd members, kube-apiservers,
 * controllers) and two agents (kwok), as directories on their own loopback addresses, driven through the
 * installed executables (k3s-install.sh, the real kubectl, systemctl, uninstall scripts). Covers join order
 * (etcd learner then member), Node JSON, kubeconfig and token formats, node passwords and a re-flashed node,
 * kubectl label/taint/cordon/drain/delete, uninstall, power-off, and that the token never shows up in an
 * argument, a log or the observation directory.
 */
import { execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { rewriteKubeconfig } from "../../lib/render/kubeconfig";
import { parseNodeJson } from "../../lib/k3s/node";
import { allFiles, eventually, run, serverConfig, SimCluster, SimNode, tempBase } from "./helpers";

jest.setTimeout(240_000);

const TOKEN = "Tok-" + crypto.randomBytes(12).toString("hex");
let base: string;
let cl: SimCluster;
let s1: SimNode;
let s2: SimNode;
let a1: SimNode;
let a2: SimNode;

beforeAll(async () => {
  base = tempBase("ha");
  cl = new SimCluster(base, { K3S_SIM_JOIN_SECONDS: "1", K3S_SIM_GRACE_SECONDS: "10", K3S_SIM_LEASE_SECONDS: "4" });
  s1 = cl.node("s1", { config: { "cluster-init": true, "node-name": "s1", ...serverConfig("127.0.20.1"), "node-label": ["tier=control"] }, token: TOKEN });
  const r1 = await s1.install("server");
  if (r1.code !== 0) throw new Error(`first server failed: ${r1.stdout}${r1.stderr}`);
  s2 = cl.node("s2", { config: { server: "https://127.0.20.1:6443", "node-name": "s2", ...serverConfig("127.0.20.2") }, token: TOKEN });
  const r2 = await s2.install("server");
  if (r2.code !== 0) throw new Error(`second server failed: ${r2.stdout}${r2.stderr}`);
  const agentCfg = (ip: string, extra: Record<string, unknown> = {}) => ({
    server: "https://127.0.20.1:6443",
    "node-ip": ip,
    "token-file": "/etc/rancher/k3s/token",
    "kubelet-arg": [],
    ...extra,
  });
  a1 = cl.node("a1", { config: agentCfg("127.0.20.11", { "node-label": ["nvidia.com/gpu=true"], "node-taint": ["gpu=true:NoSchedule"] }), token: TOKEN });
  a2 = cl.node("a2", { config: agentCfg("127.0.20.12"), token: TOKEN });
  const [ra1, ra2] = await Promise.all([a1.install("agent"), a2.install("agent")]);
  if (ra1.code !== 0 || ra2.code !== 0) throw new Error(`agents failed: ${ra1.stderr}${ra2.stderr}`);
}, 600_000);

afterAll(async () => {
  await cl?.shutdown();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

test("join order is visible in the join log: s1 Ready, then s2 (learner, member, Ready), then both agents", async () => {
  const s1Ready = cl.event("s1", "ready");
  expect(cl.event("s2", "start")).toBeGreaterThanOrEqual(s1Ready);
  expect(cl.event("s2", "etcd-learner")).toBeLessThan(cl.event("s2", "etcd-member"));
  expect(cl.event("s2", "etcd-member") - cl.event("s2", "etcd-learner")).toBeGreaterThanOrEqual(1000); // K3S_SIM_JOIN_SECONDS
  const s2Ready = cl.event("s2", "ready");
  for (const a of ["a1", "a2"]) {
    expect(cl.event(a, "start")).toBeGreaterThanOrEqual(s2Ready);
    expect(cl.event(a, "registered")).toBeLessThanOrEqual(cl.event(a, "ready"));
  }
  // the real etcd's member list, through s2's own member
  const members = await s2.etcdMembers();
  expect(members.map((m) => [m.name.replace(/-[0-9a-f]{8}$/, ""), m.learner]).sort()).toEqual([
    ["s1", false],
    ["s2", false],
  ]);
});

test("k3s etcd-snapshot save writes a real etcd snapshot; ls lists it", async () => {
  const r = await s2.k3s("etcd-snapshot", "save");
  expect(r.code).toBe(0);
  const name = /Snapshot (on-demand-s2-\d+) saved\./.exec(r.stderr)?.[1];
  expect(name).toBeDefined();
  const file = s2.path(`var/lib/rancher/k3s/server/db/snapshots/${name}`);
  expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  expect(fs.statSync(file).size).toBeGreaterThan(100_000); // the bbolt database of a cluster with Nodes, Secrets, RBAC
  expect(fs.readFileSync(file).includes(Buffer.from("s1.node-password.k3s"))).toBe(true);
  const ls = await s2.k3s("etcd-snapshot", "ls");
  expect(ls.stdout).toContain(`${name} `);
  expect(ls.stdout).toContain(`file:///var/lib/rancher/k3s/server/db/snapshots/${name}`);
  // on an agent there is no etcd
  expect((await a1.k3s("etcd-snapshot", "save")).code).toBe(1);
});

test("kubectl get nodes (table, wide, json) and a real-looking Node object", async () => {
  const t = await s1.kubectl("get", "nodes");
  expect(t.code).toBe(0);
  const lines = t.stdout.trim().split("\n");
  expect(lines[0]).toMatch(/^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION$/);
  expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
    ["a1", "Ready", "<none>"],
    ["a2", "Ready", "<none>"],
    ["s1", "Ready", "control-plane,etcd,master"],
    ["s2", "Ready", "control-plane,etcd,master"],
  ]);
  const wide = await s2.k3s("kubectl", "get", "nodes", "-o", "wide");
  expect(wide.stdout).toMatch(/INTERNAL-IP/);
  expect(wide.stdout).toMatch(/a1\s+Ready.*127\.0\.20\.11/);

  const j = await s1.kubectl("get", "node", "s1", "-o", "json");
  expect(j.code).toBe(0);
  const n = JSON.parse(j.stdout);
  expect(n.kind).toBe("Node");
  expect(n.apiVersion).toBe("v1");
  expect(n.metadata.name).toBe("s1");
  expect(n.metadata.labels).toMatchObject({
    "node-role.kubernetes.io/control-plane": "true",
    "node-role.kubernetes.io/etcd": "true",
    "kubernetes.io/hostname": "s1",
    tier: "control",
  });
  expect(n.status.addresses).toContainEqual({ type: "InternalIP", address: "127.0.20.1" });
  expect(n.status.conditions.find((c: { type: string }) => c.type === "Ready")).toMatchObject({ status: "True", reason: "KubeletReady" });
  expect(n.spec.unschedulable).toBeUndefined();
  // the project's own parser reads it
  const view = parseNodeJson(j.stdout);
  expect(view.ready).toBe(true);

  const ja1 = parseNodeJson((await s1.kubectl("get", "node", "a1", "-o", "json")).stdout);
  expect(ja1.labels["nvidia.com/gpu"]).toBe("true");
  expect(ja1.labels["node-role.kubernetes.io/control-plane"]).toBeUndefined();
  expect(ja1.taints).toEqual([{ key: "gpu", value: "true", effect: "NoSchedule" }]);

  const list = JSON.parse((await s1.kubectl("get", "nodes", "-o", "json")).stdout);
  expect(list.kind).toBe("List");
  expect(list.items.map((x: { metadata: { name: string } }) => x.metadata.name)).toEqual(["a1", "a2", "s1", "s2"]);

  const jp = await s1.k3s("kubectl", "get", "node", "a2", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}');
  expect(jp.stdout).toBe("True");
  const names = await s1.kubectl("get", "nodes", "-l", "node-role.kubernetes.io/control-plane=true", "-o", "name");
  expect(names.stdout).toBe("node/s1\nnode/s2\n");

  expect(await s1.kubectl("wait", "--for=condition=Ready", "node/a1", "node/s2", "--timeout=5s")).toMatchObject({
    code: 0,
    stdout: "node/a1 condition met\nnode/s2 condition met\n",
  });

  const nf = await s1.kubectl("get", "node", "nope", "-o", "json");
  expect(nf.code).toBe(1);
  expect(nf.stderr.trim()).toBe('Error from server (NotFound): nodes "nope" not found');
});

test("server token, kubeconfig and node password files follow k3s's formats and modes", () => {
  const ca = fs.readFileSync(s1.path("var/lib/rancher/k3s/server/tls/server-ca.crt"), "utf8");
  const caHash = crypto.createHash("sha256").update(ca).digest("hex");
  for (const s of [s1, s2]) {
    const tokFile = s.path("var/lib/rancher/k3s/server/token");
    expect(fs.readFileSync(tokFile, "utf8").trim()).toBe(`K10${caHash}::server:${TOKEN}`);
    expect(fs.statSync(tokFile).mode & 0o777).toBe(0o600);
    expect(fs.readlinkSync(s.path("var/lib/rancher/k3s/server/node-token"))).toBe("/var/lib/rancher/k3s/server/token");
  }
  const kcFile = s1.path("etc/rancher/k3s/k3s.yaml");
  expect(fs.statSync(kcFile).mode & 0o777).toBe(0o600);
  const kcText = fs.readFileSync(kcFile, "utf8");
  const kc = parse(kcText);
  expect(kc.clusters[0]).toMatchObject({ name: "default", cluster: { server: "https://127.0.0.1:6443" } });
  expect(kc.contexts[0]).toEqual({ name: "default", context: { cluster: "default", user: "default" } });
  expect(kc["current-context"]).toBe("default");
  expect(Buffer.from(kc.clusters[0].cluster["certificate-authority-data"], "base64").toString()).toBe(ca);
  const key = Buffer.from(kc.users[0].user["client-key-data"], "base64").toString();
  expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  // both servers hand out the same admin credentials (bootstrap data), and the project's renderer rewrites it
  expect(parse(fs.readFileSync(s2.path("etc/rancher/k3s/k3s.yaml"), "utf8")).users[0].user["client-key-data"]).toBe(kc.users[0].user["client-key-data"]);
  const rw = parse(rewriteKubeconfig(kcText, { server: "https://127.0.20.1:6443", name: "lab" }));
  expect(rw.clusters[0].cluster.server).toBe("https://127.0.20.1:6443");
  expect(rw.users[0].user["client-key-data"]).toBe(kc.users[0].user["client-key-data"]);
  // agents have no admin kubeconfig
  expect(fs.existsSync(a1.path("etc/rancher/k3s/k3s.yaml"))).toBe(false);
  for (const n of [s1, a1]) {
    const pw = n.path("etc/rancher/node/password");
    expect(fs.statSync(pw).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(pw, "utf8").trim()).toMatch(/^[0-9a-f]{32}$/);
  }
});

test("a rewritten kubeconfig (first server's address) works from anywhere; a wrong address or a foreign key does not", async () => {
  const kcText = fs.readFileSync(s1.path("etc/rancher/k3s/k3s.yaml"), "utf8");
  // a node-local path (kubectl runs "on" a1, inside its root)
  fs.mkdirSync(a1.path("root"), { recursive: true });
  const file = a1.path("root/lab.kubeconfig");
  fs.writeFileSync(file, rewriteKubeconfig(kcText, { server: "https://127.0.20.1:6443", name: "lab" }), { mode: 0o600 });
  const ok = await a1.kubectl("--kubeconfig", "/root/lab.kubeconfig", "get", "node", "s2", "-o", "name");
  expect(ok).toMatchObject({ code: 0, stdout: "node/s2\n" });
  const viaEnv = await run([path.join(a1.bin, "kubectl"), "get", "nodes", "-o", "name"], { KUBECONFIG: "/root/lab.kubeconfig" });
  expect(viaEnv.stdout.split("\n").filter(Boolean)).toHaveLength(4);
  fs.writeFileSync(file, rewriteKubeconfig(kcText, { server: "https://127.0.20.11:6443", name: "lab" }), { mode: 0o600 });
  const agentAddr = await a1.kubectl("--kubeconfig", "/root/lab.kubeconfig", "get", "nodes");
  // kubectl's discovery retries log first; its last line is the verdict
  expect(agentAddr.stderr.trim().split("\n").pop()).toBe("The connection to the server 127.0.20.11:6443 was refused - did you specify the right host or port?");
  // a client certificate and key of its own (not signed by the cluster's client CA)
  const doc = parse(kcText);
  const own = fs.mkdtempSync(path.join(base, "foreign-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      path.join(own, "k"),
      "-out",
      path.join(own, "c"),
      "-days",
      "1",
      "-subj",
      "/O=system:masters/CN=intruder",
    ],
    { stdio: "ignore" },
  );
  doc.users[0].user["client-certificate-data"] = fs.readFileSync(path.join(own, "c")).toString("base64");
  doc.users[0].user["client-key-data"] = fs.readFileSync(path.join(own, "k")).toString("base64");
  fs.writeFileSync(file, rewriteKubeconfig(stringify(doc), { server: "https://127.0.20.2:6443", name: "lab" }), { mode: 0o600 });
  const foreign = await a1.kubectl("--kubeconfig", "/root/lab.kubeconfig", "get", "nodes");
  expect(foreign.stderr.trim()).toBe("error: You must be logged in to the server (Unauthorized)");
});

test("kubectl on an agent fails like the real thing; the kubelet identity may not touch other Nodes or Secrets", async () => {
  const r = await a1.kubectl("get", "nodes");
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/The connection to the server localhost:8080 was refused/);
  const kubelet = ["--kubeconfig", "/var/lib/rancher/k3s/agent/kubelet.kubeconfig"];
  const own = await a1.k3s("kubectl", ...kubelet, "get", "node", "a1", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}');
  expect(own).toMatchObject({ code: 0, stdout: "True" });
  const write = await a1.k3s("kubectl", ...kubelet, "label", "node", "a2", "x=y");
  expect(write.code).toBe(1);
  expect(write.stderr).toMatch(/Forbidden/);
  expect(write.stderr).toMatch(/system:node:a1|node "a1"|'a1'/);
  const secret = await a1.k3s("kubectl", ...kubelet, "get", "secret", "-n", "kube-system", "a1.node-password.k3s");
  expect(secret.stderr).toMatch(/Forbidden/);
  expect(await a1.systemctl("is-enabled", "--quiet", "k3s-agent")).toMatchObject({ code: 0 });
  expect(await a1.systemctl("is-active", "k3s-agent")).toMatchObject({ code: 0, stdout: "active\n" });
  expect((await a1.systemctl("is-enabled", "k3s")).code).toBe(1);
  const other = await a1.systemctl("restart", "nginx");
  expect(other.stderr).toMatch(/System has not been booted with systemd/);
});

test("label, taint, cordon, uncordon with kubectl's messages and refusals", async () => {
  expect((await s1.kubectl("label", "node", "a2", "zone=a")).stdout).toBe("node/a2 labeled\n");
  const clash = await s1.kubectl("label", "node", "a2", "zone=b");
  expect(clash.code).toBe(1);
  expect(clash.stderr).toMatch(/'zone' already has a value \(a\), and --overwrite is false/);
  expect((await s1.kubectl("label", "node", "a2", "--overwrite", "zone=b", "extra=1")).code).toBe(0);
  expect((await s1.kubectl("label", "node", "a2", "extra-")).code).toBe(0);
  let n = parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout);
  expect(n.labels.zone).toBe("b");
  expect(n.labels.extra).toBeUndefined();
  expect((await s1.kubectl("label", "node", "ghost", "a=b")).stderr.trim()).toBe('Error from server (NotFound): nodes "ghost" not found');

  expect((await s1.kubectl("taint", "node", "a2", "dedicated=db:NoSchedule")).stdout).toBe("node/a2 tainted\n");
  const dup = await s1.kubectl("taint", "node", "a2", "dedicated=web:NoSchedule");
  expect(dup.code).toBe(1);
  expect(dup.stderr).toMatch(/already has dedicated taint\(s\) with same effect\(s\) and --overwrite is false/);
  expect((await s1.kubectl("taint", "node", "a2", "--overwrite", "dedicated=web:NoSchedule")).code).toBe(0);
  n = parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout);
  expect(n.taints).toEqual([{ key: "dedicated", value: "web", effect: "NoSchedule" }]);
  expect((await s1.kubectl("taint", "node", "a2", "dedicated:NoSchedule-")).stdout).toBe("node/a2 untainted\n");
  const missing = await s1.kubectl("taint", "node", "a2", "dedicated:NoSchedule-");
  expect(missing.code).toBe(1);
  expect(missing.stderr).toMatch(/taint "dedicated:NoSchedule" not found/);
  expect((await s1.kubectl("taint", "node", "a2", "bad=x:Sometimes")).code).toBe(1);

  expect((await s1.kubectl("cordon", "a2")).stdout).toBe("node/a2 cordoned\n");
  const t = await s1.kubectl("get", "nodes");
  expect(t.stdout).toMatch(/a2\s+Ready,SchedulingDisabled/);
  n = parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout);
  expect(n.unschedulable).toBe(true);
  expect(n.taints).toContainEqual({ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" });
  expect((await s1.kubectl("uncordon", "a2")).stdout).toBe("node/a2 uncordoned\n");
  expect(parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout).unschedulable).toBe(false);
});

test("node-label / node-taint apply at registration only: a config change plus restart leaves the Node as it was", async () => {
  fs.writeFileSync(a2.path("etc/rancher/k3s/config.yaml"), fs.readFileSync(a2.path("etc/rancher/k3s/config.yaml"), "utf8") + "node-label:\n- late=true\n");
  const r = await a2.systemctl("restart", "k3s-agent");
  expect(r).toMatchObject({ code: 0 });
  const n = parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout);
  expect(n.ready).toBe(true);
  expect(n.labels.late).toBeUndefined();
  expect(n.labels.zone).toBe("b"); // the kubectl-applied label survives the restart
});

test("drain: cordons and completes; a pod whose termination never completes makes it fail after --timeout", async () => {
  const d = await s1.kubectl("drain", "a2", "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=5s");
  expect(d.code).toBe(0);
  expect(d.stdout).toBe("node/a2 cordoned\nnode/a2 drained\n");
  // a pod bound to a2: kwok runs no pods, so nothing ever confirms its termination (a stuck pod)
  const pod = path.join(base, "hang-pod.json");
  fs.writeFileSync(
    pod,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "hang", namespace: "default" },
      spec: { nodeName: "a2", containers: [{ name: "c", image: "none" }] },
    }),
  );
  expect((await s1.kubectl("create", "-f", pod)).code).toBe(0);
  try {
    const h = await s1.kubectl("drain", "a2", "--ignore-daemonsets", "--delete-emptydir-data", "--force", "--timeout=2s");
    expect(h.code).toBe(1);
    expect(h.ms).toBeGreaterThanOrEqual(1900);
    expect(h.stderr).toMatch(
      /unable to drain node "a2" due to error: error when waiting for pod "hang" in namespace "default" to terminate: (context deadline exceeded|global timeout reached: 2s)/,
    );
    expect(h.stdout).toMatch(/node\/a2 already cordoned/);
  } finally {
    await s1.kubectl("delete", "pod", "hang", "-n", "default", "--force", "--grace-period=0", "--ignore-not-found");
  }
});

test("delete node removes the Node and its node-password secret; NotFound afterwards", async () => {
  const sec = await s1.kubectl("get", "secret", "-n", "kube-system", "a2.node-password.k3s", "-o", "json");
  expect(sec.code).toBe(0);
  expect(JSON.parse(sec.stdout)).toMatchObject({ kind: "Secret", type: "k3s.cattle.io/node-password", metadata: { namespace: "kube-system" } });
  expect((await s1.kubectl("get", "secret", "a2.node-password.k3s")).stderr.trim()).toBe(
    'Error from server (NotFound): secrets "a2.node-password.k3s" not found',
  );
  const del = await s1.kubectl("delete", "node", "a2");
  expect(del).toMatchObject({ code: 0, stdout: 'node "a2" deleted\n' });
  expect((await s1.kubectl("get", "node", "a2")).stderr.trim()).toBe('Error from server (NotFound): nodes "a2" not found');
  // the Secret is owned by the Node: the real garbage collector removes it
  expect(await eventually(async () => (await s1.kubectl("get", "secret", "-n", "kube-system", "a2.node-password.k3s")).code === 1, 30_000)).toBe(true);
  expect((await s1.kubectl("delete", "node", "a2")).code).toBe(1);
  expect((await s1.kubectl("delete", "node", "a2", "--ignore-not-found", "--timeout=60s")).code).toBe(0);
  // a running kubelet does not re-register a deleted Node (only a restart does): the garbage collector
  // removes the Node's Lease (after which a re-registration would have shown), a2's k3s still runs, and
  // the Node stays gone
  expect(await eventually(async () => (await s1.kubectl("get", "lease", "-n", "kube-node-lease", "a2")).code === 1, 30_000)).toBe(true);
  expect((await a2.systemctl("is-active", "k3s-agent")).stdout).toBe("active\n");
  expect((await s1.kubectl("get", "node", "a2")).code).toBe(1);
  const again = await a2.systemctl("restart", "k3s-agent");
  expect(again.code).toBe(0);
  const back = parseNodeJson((await s1.kubectl("get", "node", "a2", "-o", "json")).stdout);
  expect(back.ready).toBe(true);
  expect(back.labels.late).toBe("true"); // re-registration applies the config's labels again
});

test("re-flashed agent (same hostname, new node password) is rejected until its Node is deleted", async () => {
  const oldPw = fs.readFileSync(a1.path("etc/rancher/node/password"), "utf8");
  expect((await a1.script("k3s-killall.sh")).code).toBe(0);
  // a new root for the same board: nothing of the old /etc survives the flash
  const cfg = parse(fs.readFileSync(a1.path("etc/rancher/k3s/config.yaml"), "utf8"));
  const a1b = cl.node("a1", { dir: "a1-reflashed", hostname: "a1", config: cfg, token: TOKEN });
  const r = await a1b.install("agent");
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(
    "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-password entry, try enabling a unique node name with the --with-node-id flag",
  );
  expect(fs.readFileSync(a1b.path("etc/rancher/node/password"), "utf8")).not.toBe(oldPw);
  expect(fs.readFileSync(a1b.path("var/log/k3s-agent.log"), "utf8")).toMatch(
    /Waiting to retrieve agent configuration; server is not ready: Node password rejected/,
  );
  // still the old Node, never Ready again from the new board
  expect((await s1.kubectl("delete", "node", "a1")).code).toBe(0);
  const r2 = await a1b.install("agent");
  expect(r2).toMatchObject({ code: 0 });
  const n = parseNodeJson((await s1.kubectl("get", "node", "a1", "-o", "json")).stdout);
  expect(n.ready).toBe(true);
  const log = cl
    .joinLog()
    .filter((e) => e.node === "a1")
    .map((e) => e.event);
  expect(log).toEqual(expect.arrayContaining(["rejected", "registered"]));
});

test("agent uninstall: k3s stops, files go, the Node stays NotReady; the node password survives", async () => {
  const a1b = cl.nodes.filter((n) => n.name === "a1").pop()!;
  const u = await a1b.script("k3s-agent-uninstall.sh");
  expect(u.code).toBe(0);
  expect(fs.existsSync(a1b.path("etc/rancher/k3s"))).toBe(false);
  expect(fs.existsSync(a1b.path("var/lib/rancher/k3s"))).toBe(false);
  expect(fs.existsSync(a1b.path("usr/local/bin/k3s-agent-uninstall.sh"))).toBe(false);
  expect(fs.existsSync(a1b.path("usr/local/bin/k3s-killall.sh"))).toBe(false);
  expect(fs.existsSync(a1b.path("etc/systemd/system/k3s-agent.service"))).toBe(false);
  expect(fs.existsSync(a1b.path("etc/rancher/node/password"))).toBe(true);
  expect((await a1b.systemctl("is-active", "k3s-agent")).code).toBe(3);
  // the node lifecycle controller marks it after the grace period (10 s here)
  expect(await eventually(async () => !parseNodeJson((await s1.kubectl("get", "node", "a1", "-o", "json")).stdout).ready, 30_000)).toBe(true);
  expect(
    await eventually(
      async () => parseNodeJson((await s1.kubectl("get", "node", "a1", "-o", "json")).stdout).taints.some((t) => t.effect === "NoExecute"),
      15_000,
    ),
  ).toBe(true);
  const j = await s1.kubectl("get", "node", "a1", "-o", "json");
  expect(j.code).toBe(0);
  const n = parseNodeJson(j.stdout);
  expect(n.ready).toBe(false);
  expect(n.readyDetail).toMatch(/Unknown \(NodeStatusUnknown: Kubelet stopped posting node status\.\)/);
  expect(n.taints).toContainEqual({ key: "node.kubernetes.io/unreachable", effect: "NoExecute" });
  expect((await s1.kubectl("get", "nodes")).stdout).toMatch(/a1\s+NotReady/);
  const w = await s1.kubectl("wait", "--for=condition=Ready", "node/a1", "--timeout=1s");
  expect(w.code).toBe(1);
  expect(w.stderr.trim()).toBe("error: timed out waiting for the condition on nodes/a1");
  expect(cl.joinLog().some((e) => e.node === "a1" && e.event === "uninstalled")).toBe(true);
});

test("a node powered off (its PID namespace killed, as the lab does) turns NotReady after the grace period", async () => {
  const p = cl.node("p1", { config: { server: "https://127.0.20.1:6443", "node-ip": "127.0.20.21", "token-file": "/etc/rancher/k3s/token" }, token: TOKEN });
  // the node's processes live in their own PID namespace: other nodes cannot see its pids, only its heartbeats
  const host = spawn(
    "unshare",
    [
      "--pid",
      "--fork",
      "--mount-proc",
      "--kill-child",
      "sh",
      "-c",
      `sh "$1" >/dev/null 2>&1 && echo up && exec sleep 600`,
      "sh",
      path.join(p.bin, "k3s-install.sh"),
    ],
    {
      env: { ...process.env, INSTALL_K3S_SKIP_DOWNLOAD: "true", INSTALL_K3S_EXEC: "agent" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      host.stdout!.on("data", (d: Buffer) => (d.toString().includes("up") ? resolve() : undefined));
      host.once("exit", (code) => reject(new Error(`node host exited ${code} before k3s was up`)));
    });
    expect(parseNodeJson((await s1.kubectl("get", "node", "p1", "-o", "json")).stdout).ready).toBe(true);
    const off = Date.now();
    host.kill("SIGKILL");
    let notReadyAfter = -1;
    while (Date.now() - off < 40_000) {
      const n = parseNodeJson((await s1.kubectl("get", "node", "p1", "-o", "json")).stdout);
      if (!n.ready) {
        notReadyAfter = Date.now() - off;
        expect(n.readyDetail).toMatch(/NodeStatusUnknown/);
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(notReadyAfter).toBeGreaterThan(5000); // the Lease has to go stale: grace period 10 s, renewed every 1 s
    expect(notReadyAfter).toBeLessThan(25_000);
  } finally {
    if (host.exitCode === null && host.signalCode === null) {
      const gone = new Promise((r) => host.once("close", r));
      host.kill("SIGKILL");
      await gone;
    }
    host.stdout?.destroy();
  }
});

test("the token never appears in an argument, a log, a Node annotation or the cluster directory", async () => {
  const argv = fs
    .readFileSync(cl.file("argv.log"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(argv.length).toBeGreaterThan(20);
  const progs = new Set(argv.map((r: { prog: string }) => r.prog));
  for (const p of ["k3s", "kubectl", "systemctl", "k3s-install.sh", "k3s-killall.sh", "k3s-agent-uninstall.sh"]) expect(progs).toContain(p);
  expect(argv.some((r: { argv: string[] }) => r.argv[0] === "server")).toBe(true); // the daemons' own argv is recorded
  for (const r of argv) {
    expect(JSON.stringify(r.argv)).not.toContain(TOKEN);
    expect(r.envKeys).toEqual(expect.any(Array));
    expect(JSON.stringify(r)).not.toContain(TOKEN);
  }
  for (const f of allFiles(cl.dir)) expect(fs.readFileSync(f, "utf8")).not.toContain(TOKEN);
  for (const n of cl.nodes) {
    for (const log of ["var/log/k3s.log", "var/log/k3s-agent.log"]) {
      if (fs.existsSync(n.path(log))) expect(fs.readFileSync(n.path(log), "utf8")).not.toContain(TOKEN);
    }
  }
  const ann = JSON.parse((await s1.kubectl("get", "node", "s2", "-o", "json")).stdout).metadata.annotations["k3s.io/node-args"];
  expect(JSON.parse(ann)).toEqual(expect.arrayContaining(["server", "--token-file", "/etc/rancher/k3s/token"]));
  // a process started with the token in its arguments IS caught by the log (the check can fail)
  await run([path.join(s1.bin, "k3s"), "kubectl", "get", "node", "s1", "--context", TOKEN]);
  expect(fs.readFileSync(cl.file("argv.log"), "utf8")).toContain(TOKEN);
});
