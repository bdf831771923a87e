/**
 * lab/k3s's failure modes over real components (etcd, kube-apiserver, controllers, kwok) and k3s's rules
 * around them: wrong tokens (bare and K10 forms),
 * a server URL that names no running server, critical flag mismatch, simultaneous server joins ("too many
 * learner members"), a restarted server whose token changed ("bootstrap data already found and encrypted
 * with different token"), etcd quorum loss, config.yaml.d merging, systemctl / boot / install.sh
 * behaviour, and the YAML reader against the `yaml` library.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";
import { parseNodeJson } from "../../lib/k3s/node";
import { eventually, LAB_K3S, run, serverConfig, SimCluster, tempBase } from "./helpers";

jest.setTimeout(300_000);

const TOKEN = "Fail-" + crypto.randomBytes(10).toString("hex");
let base: string;
const clusters: SimCluster[] = [];

function cluster(tag: string, env: Record<string, string> = {}): SimCluster {
  const c = new SimCluster(path.join(base, tag), {
    K3S_SIM_JOIN_SECONDS: "2",
    K3S_SIM_GRACE_SECONDS: "6",
    K3S_SIM_LEASE_SECONDS: "4",
    K3S_SIM_CONNECT_RETRY_SECONDS: "1",
    ...env,
  });
  clusters.push(c);
  return c;
}

beforeAll(() => {
  base = tempBase("fail");
});

afterAll(async () => {
  for (const c of clusters) await c.shutdown();
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

describe("joining with the wrong credentials or to the wrong place", () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = cluster("tokens");
    const s1 = c.node("s1", { config: { "cluster-init": true, ...serverConfig("127.0.30.1") }, token: TOKEN });
    const r = await s1.install("server");
    if (r.code !== 0) throw new Error(r.stderr);
  }, 300_000);

  test("server join with a wrong bare token: 401 from the server's apiserver, nothing registered", async () => {
    const n = c.node("s2", { config: { server: "https://127.0.30.1:6443", ...serverConfig("127.0.30.2") }, token: "not-the-token" });
    const r = await n.install("server");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "starting kubernetes: preparing server: failed to get bootstrap data: https://127.0.30.1:6443/api/v1/namespaces/kube-system/secrets/k3s-bootstrap: 401 Unauthorized",
    );
    const s1 = c.nodes[0];
    expect((await s1.kubectl("get", "node", "s2")).stderr.trim()).toBe('Error from server (NotFound): nodes "s2" not found');
    expect(await s1.etcdMembers()).toHaveLength(1);
  });

  test("K10 token whose CA hash is not the cluster's: the CA hash message, for servers and agents", async () => {
    const bad = `K10${"ab".repeat(32)}::server:${TOKEN}`;
    for (const role of ["server", "agent"] as const) {
      const cfg =
        role === "server"
          ? { server: "https://127.0.30.1:6443", ...serverConfig("127.0.30.3") }
          : { server: "https://127.0.30.1:6443", "node-ip": "127.0.30.3", "token-file": "/etc/rancher/k3s/token" };
      const n = c.node(`k10${role}`, { config: cfg, token: bad });
      const r = await n.install(role);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/failed to validate token: token CA hash does not match the Cluster CA certificate hash: (ab){32} != [0-9a-f]{64}/);
    }
  });

  test("the full K10 token from server/token is accepted, a malformed one is refused", async () => {
    const full = fs.readFileSync(path.join(c.base, "s1/var/lib/rancher/k3s/server/token"), "utf8").trim();
    const ok = c.node("a-full", {
      config: { server: "https://127.0.30.1:6443", "node-ip": "127.0.30.4", "token-file": "/etc/rancher/k3s/token" },
      token: full,
    });
    expect((await ok.install("agent")).code).toBe(0);
    const bad = c.node("a-malformed", {
      config: { server: "https://127.0.30.1:6443", "node-ip": "127.0.30.5", "token-file": "/etc/rancher/k3s/token" },
      token: "K10nothex::x",
    });
    const r = await bad.install("agent");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>");
  });

  test("agent with a wrong bare token: token is not valid (401)", async () => {
    const n = c.node("a-wrong", {
      config: { server: "https://127.0.30.1:6443", "node-ip": "127.0.30.6", "token-file": "/etc/rancher/k3s/token" },
      token: "wrong",
    });
    const r = await n.install("agent");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("token is not valid: https://127.0.30.1:6443/api/v1/namespaces/kube-system/secrets/k3s-bootstrap: 401 Unauthorized");
  });

  test("server URL that names no registered server: connection refused (servers give up, agents keep retrying)", async () => {
    const s = c.node("s-nowhere", { config: { server: "https://127.0.30.99:6443", ...serverConfig("127.0.30.7") }, token: TOKEN });
    const r = await s.install("server");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('failed to get CA certs: Get "https://127.0.30.99:6443/cacerts": dial tcp 127.0.30.99:6443: connect: connection refused');
    const a = c.node("a-nowhere", {
      config: { server: "https://127.0.30.1:7443", "node-ip": "127.0.30.8", "token-file": "/etc/rancher/k3s/token" },
      token: TOKEN,
    });
    const ra = await a.install("agent");
    expect(ra.code).toBe(1);
    expect(ra.stderr).toMatch(/dial tcp 127\.0\.30\.1:7443: connect: connection refused \(retrying\)/);
    expect((await a.systemctl("is-active", "k3s-agent")).stdout).toBe("active\n"); // still retrying, like k3s under systemd
    expect((await a.script("k3s-killall.sh")).code).toBe(0);
    expect((await a.systemctl("is-active", "k3s-agent")).code).toBe(3);
  });

  test("critical flag mismatch on a joining server", async () => {
    const n = c.node("s-crit", {
      config: { server: "https://127.0.30.1:6443", ...serverConfig("127.0.30.9", { "service-cidr": "10.99.0.0/16", disable: ["traefik"] }) },
      token: TOKEN,
    });
    const r = await n.install("server");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("failed to validate server configuration: critical configuration value mismatch between servers");
    const log = fs.readFileSync(n.path("var/log/k3s.log"), "utf8");
    expect(log).toMatch(/Critical configuration mismatched: service-cidr/);
    expect(log).toMatch(/Critical configuration mismatched: disable/);
    expect(log).not.toMatch(/mismatched: cluster-cidr/);
  });

  test("a server restarted with a different token: bootstrap data already found and encrypted with different token", async () => {
    const s1 = c.nodes.find((n) => n.name === "s1")!;
    fs.writeFileSync(s1.path("etc/rancher/k3s/token"), "changed-token\n", { mode: 0o600 });
    const r = await s1.systemctl("restart", "k3s");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("bootstrap data already found and encrypted with different token");
    expect((await s1.systemctl("is-active", "k3s")).stdout).toBe("failed\n");
    fs.writeFileSync(s1.path("etc/rancher/k3s/token"), TOKEN + "\n", { mode: 0o600 });
    expect((await s1.systemctl("restart", "k3s")).code).toBe(0);
    expect((await s1.kubectl("get", "node", "s1", "-o", "json")).code).toBe(0);
  });
});

describe("HA joins", () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = cluster("ha");
    const s1 = c.node("s1", { config: { "cluster-init": true, ...serverConfig("127.0.31.1") }, token: TOKEN });
    const r = await s1.install("server");
    if (r.code !== 0) throw new Error(r.stderr);
  }, 300_000);

  test("two servers joining at once: one fails with too many learner members, the retry succeeds", async () => {
    const cfg = (ip: string) => ({ server: "https://127.0.31.1:6443", ...serverConfig(ip) });
    const s2 = c.node("s2", { config: cfg("127.0.31.2"), token: TOKEN });
    // s3 joins with the full K10 token from the first server's server/token (CA hash checked)
    const full = fs.readFileSync(path.join(c.base, "s1/var/lib/rancher/k3s/server/token"), "utf8").trim();
    expect(full).toMatch(/^K10[0-9a-f]{64}::server:/);
    const s3 = c.node("s3", { config: cfg("127.0.31.3"), token: full });
    const [r2, r3] = await Promise.all([s2.install("server"), s3.install("server")]);
    const codes = [r2.code, r3.code].sort();
    expect(codes).toEqual([0, 1]);
    const [failed, failedNode] = r2.code === 1 ? [r2, s2] : [r3, s3];
    expect(failed.stderr).toContain("ETCD join failed: etcdserver: too many learner members in cluster");
    const retry = await failedNode.install("server");
    expect(retry.code).toBe(0);
    const s1 = c.nodes[0];
    expect((await s1.etcdMembers()).filter((m) => !m.learner)).toHaveLength(3);
    const nodes = JSON.parse((await s1.kubectl("get", "nodes", "-o", "json")).stdout).items;
    expect(nodes.map((n: { metadata: { name: string } }) => n.metadata.name)).toEqual(["s1", "s2", "s3"]);
    expect(nodes.every((n: unknown) => parseNodeJson(JSON.stringify(n)).ready)).toBe(true);
  });

  test("losing etcd quorum makes kubectl time out; one server back restores it", async () => {
    const byName = Object.fromEntries(c.nodes.map((n) => [n.name, n]));
    const s1 = byName.s1;
    expect((await byName.s3.systemctl("stop", "k3s")).code).toBe(0);
    expect((await s1.kubectl("get", "nodes")).code).toBe(0); // 2 of 3 voting members up
    expect((await byName.s2.systemctl("stop", "k3s")).code).toBe(0);
    // no etcd quorum: the apiserver cannot answer; kubectl gives up after its request timeout
    const r = await s1.kubectl("get", "nodes", "--request-timeout=20s");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/etcdserver: request timed out|Timeout|deadline exceeded/i);
    expect((await byName.s2.systemctl("start", "k3s")).code).toBe(0);
    expect(await eventually(async () => /s3\s+NotReady/.test((await s1.kubectl("get", "nodes")).stdout), 60_000)).toBe(true);
  });

  test("kubectl on a server whose k3s is stopped: connection refused (k3s.yaml's 127.0.0.1:6443 is the node's own address in the lab)", async () => {
    const s3 = c.nodes.filter((n) => n.name === "s3").pop()!;
    const r = await s3.kubectl("get", "nodes");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("The connection to the server 127.0.31.3:6443 was refused - did you specify the right host or port?");
  });

  test("deleting a server's Node removes its etcd member; its stale k3s then cannot restart", async () => {
    const s1 = c.nodes[0];
    const s3 = c.nodes.filter((n) => n.name === "s3").pop()!;
    expect(await s1.kubectl("delete", "node", "s3")).toMatchObject({ code: 0 });
    expect((await s1.etcdMembers()).map((m) => m.name.replace(/-[0-9a-f]{8}$/, "")).sort()).toEqual(["s1", "s2"]);
    const r = await s3.systemctl("start", "k3s");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("the member has been permanently removed from the cluster");
    // uninstall (wipes its datastore) then a fresh join works
    expect((await s3.script("k3s-uninstall.sh")).code).toBe(0);
    fs.mkdirSync(s3.path("etc/rancher/k3s"), { recursive: true });
    fs.writeFileSync(s3.path("etc/rancher/k3s/config.yaml"), stringify({ server: "https://127.0.31.1:6443", ...serverConfig("127.0.31.3") }));
    fs.writeFileSync(s3.path("etc/rancher/k3s/token"), TOKEN, { mode: 0o600 });
    expect((await s3.install("server")).code).toBe(0);
  });
});

describe("config files, install.sh and systemctl", () => {
  let c: SimCluster;
  beforeAll(async () => {
    c = cluster("config");
    const s1 = c.node("s1", { config: { ...serverConfig("127.0.32.1"), "cluster-init": true }, token: TOKEN });
    const r = await s1.install("server");
    if (r.code !== 0) throw new Error(r.stderr);
  }, 300_000);

  test("config.yaml.d: lexical order, later files replace, key+ appends; unknown keys are skipped with k3s's warning", async () => {
    const a = c.node("cfg-agent", {
      hostname: "from-hostname",
      config: { server: "https://127.0.32.1:6443", "node-ip": "127.0.32.50", "token-file": "/etc/rancher/k3s/token", "node-label": ["a=1"] },
      dropins: {
        "20-b.yaml": "node-label+:\n- b=2\nnode-ip: 127.0.32.51\n",
        "10-a.yaml": "node-label:\n- z=0\ncluster-cidr: 10.9.0.0/16 # a server-only key\n",
        "30-ignored.yml.bak": "node-ip: 1.2.3.4\n",
      },
      token: TOKEN,
    });
    const r = await a.install("agent");
    expect(r.code).toBe(0);
    const s1 = c.nodes[0];
    const n = JSON.parse((await s1.kubectl("get", "node", "from-hostname", "-o", "json")).stdout);
    expect(n.metadata.labels).toMatchObject({ z: "0", b: "2" });
    expect(n.metadata.labels.a).toBeUndefined();
    expect(n.status.addresses).toContainEqual({ type: "InternalIP", address: "127.0.32.51" });
    expect(fs.readFileSync(a.path("var/log/k3s-agent.log"), "utf8")).toContain("Unknown flag --cluster-cidr found in config.yaml, skipping");
  });

  test("invalid YAML in config.yaml: k3s exits and install.sh reports it", async () => {
    const a = c.node("bad-yaml", { config: {}, token: TOKEN });
    fs.writeFileSync(a.path("etc/rancher/k3s/config.yaml"), "server: https://127.0.32.1:6443\n  node-ip: x\n");
    const r = await a.install("agent");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed to parse config file .*config\.yaml: yaml: .*line 2/);
  });

  test("install.sh: airgap only, needs the k3s binary, creates a working kubectl symlink, honours K3S_URL", async () => {
    const s1 = c.nodes[0];
    const noSkip = await s1.install("server", { INSTALL_K3S_SKIP_DOWNLOAD: "" });
    expect(noSkip.code).toBe(1);
    expect(noSkip.stderr).toMatch(/INSTALL_K3S_SKIP_DOWNLOAD=true/);

    const a = c.node("url-agent", { config: { "node-ip": "127.0.32.60", "token-file": "/etc/rancher/k3s/token" }, token: TOKEN });
    fs.rmSync(path.join(a.bin, "kubectl"));
    const noTok = await run(["sh", path.join(a.bin, "k3s-install.sh")], { INSTALL_K3S_SKIP_DOWNLOAD: "true", K3S_URL: "https://127.0.32.1:6443" });
    expect(noTok.code).toBe(1);
    expect(noTok.stderr).toContain("K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined");
    const ok = await run(["sh", path.join(a.bin, "k3s-install.sh")], {
      INSTALL_K3S_SKIP_DOWNLOAD: "true",
      K3S_URL: "https://127.0.32.1:6443",
      K3S_TOKEN_FILE: "/etc/rancher/k3s/token",
    });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("Creating /usr/local/bin/kubectl symlink to k3s");
    expect(fs.readlinkSync(path.join(a.bin, "kubectl"))).toBe("k3s");
    const envFile = a.path("etc/systemd/system/k3s-agent.service.env");
    expect(fs.statSync(envFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(envFile, "utf8")).toContain("K3S_URL='https://127.0.32.1:6443'");
    expect(fs.readFileSync(a.path("etc/systemd/system/k3s-agent.service"), "utf8")).toMatch(/Type=exec[\s\S]*ExecStart=\/usr\/local\/bin\/k3s \\\n\s+agent/);
    // the kubectl symlink (to the multi-call k3s) acts as kubectl: an agent has no kubeconfig
    const k = await run([path.join(a.bin, "kubectl"), "get", "nodes"]);
    expect(k.stderr).toMatch(/localhost:8080 was refused/);
    const k2 = await run([
      path.join(a.bin, "kubectl"),
      "--kubeconfig",
      "/var/lib/rancher/k3s/agent/kubelet.kubeconfig",
      "get",
      "node",
      "from-hostname",
      "-o",
      "name",
    ]);
    expect(k2.stdout).toBe("node/from-hostname\n");

    const noBin = c.node("no-binary", {
      config: { "node-ip": "127.0.32.61", server: "https://127.0.32.1:6443", "token-file": "/etc/rancher/k3s/token" },
      token: TOKEN,
    });
    fs.rmSync(path.join(noBin.bin, "k3s"));
    const nb = await noBin.install("agent");
    expect(nb.code).toBe(1);
    expect(nb.stderr).toContain("Executable k3s binary not found at /usr/local/bin/k3s");
  });

  test("systemctl stop/start/restart/is-active, and the boot hook starts enabled units", async () => {
    const s1 = c.nodes[0];
    expect((await s1.systemctl("is-active", "k3s")).stdout).toBe("active\n");
    expect((await s1.systemctl("stop", "k3s")).code).toBe(0);
    expect((await s1.systemctl("is-active", "k3s")).stdout).toBe("inactive\n");
    const t0 = Date.now();
    const boot = await s1.k3s("k3s-sim", "boot");
    expect(boot.code).toBe(0);
    let state = "";
    while (Date.now() - t0 < 180_000) {
      state = (await s1.systemctl("is-active", "k3s")).stdout.trim();
      if (state === "active") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(state).toBe("active");
    const st = await s1.systemctl("status", "k3s");
    expect(st.stdout).toMatch(/Loaded: loaded \(\/etc\/systemd\/system\/k3s.service; enabled/);
    expect(st.stdout).toMatch(/k3s is up and running/);
    expect((await s1.systemctl("disable", "k3s")).code).toBe(0);
    expect((await s1.systemctl("is-enabled", "k3s")).stdout).toBe("disabled\n");
    expect((await s1.systemctl("enable", "k3s")).code).toBe(0);
    expect((await s1.systemctl("restart", "nonexistent")).stderr).toMatch(/has not been booted with systemd/);
  });
});

describe("readers", () => {
  // plain JS modules of the stand-in
  const Y = require(path.join(LAB_K3S, "lib/yaml.js")) as { parse(t: string, what?: string): unknown; stringify(v: unknown): string };
  test("the stand-in's YAML reader agrees with the yaml library, both ways", () => {
    const docs: unknown[] = [
      {
        "cluster-init": true,
        "node-label": ["a=b", "x.io/y=z"],
        "node-taint": ["k=v:NoSchedule"],
        "kubelet-arg": [],
        "write-kubeconfig-mode": "0600",
        disable: ["traefik"],
      },
      {
        apiVersion: "v1",
        clusters: [{ cluster: { "certificate-authority-data": "LS0tLS1C", server: "https://127.0.0.1:6443" }, name: "default" }],
        preferences: {},
      },
      {
        s: "with: colon",
        t: "# not a comment",
        u: "yes",
        v: "123",
        w: "",
        q: "it's",
        n: null,
        f: 1.5,
        neg: -3,
        nested: [[1, 2], [], { a: [] }],
        "key with space": "v",
      },
    ];
    for (const d of docs) {
      expect(Y.parse(stringify(d, { lineWidth: 0 }))).toEqual(d);
      expect(parse(Y.stringify(d))).toEqual(d);
    }
    expect(Y.parse("# c\nfoo: bar # x\nlist:\n- a\n- 'b c'\nflow: [x, \"y\", 3]\nblock: |\n  l1\n  l2\n")).toEqual({
      foo: "bar",
      list: ["a", "b c"],
      flow: ["x", "y", 3],
      block: "l1\nl2\n",
    });
    expect(() => Y.parse("a: b\n  c: d\n", "cfg")).toThrow(/cfg: line 2/);
    expect(() => Y.parse("a: &x 1\n")).toThrow(/anchors/);
    expect(() => Y.parse("a: 1\na: 2\n")).toThrow(/duplicate key a/);
  });
});
