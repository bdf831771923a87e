"use strict";
/**
 * `k3s server` / `k3s agent`: k3s's supervisor over real components (see lab/k3s/BEHAVIOURS.md).
 *
 * server, in k3s's order:
 *  1. config.yaml + config.yaml.d (config.js) and the token;
 *  2. datastore: with etcd data on disk, restart that member; with cluster-init (or neither cluster-init
 *     nor server), create the cluster: CAs, service-account key, admin cert (pki.js), a one-member etcd;
 *     with `server:`, join: fetch the server's CA from its TLS chain and check the K10 hash, read the
 *     bootstrap data with the token (the real apiserver answers 401 to a wrong one), compare the critical
 *     flags, `etcdctl member add --learner`, start etcd in the existing cluster, promote once in sync;
 *  3. kube-apiserver on <node-ip>:6443, then kube-controller-manager and kube-scheduler (leader election);
 *     the first server stores the encrypted bootstrap data (Secret kube-system/k3s-bootstrap) and the
 *     token's RBAC; a restarted server must decrypt it with its token ("bootstrap data already found and
 *     encrypted with different token" otherwise);
 *  4. writes server/token, k3s.yaml, then registers its node like an agent (below);
 *  5. runs k3s's node-removal controller: a deleted Node loses its node-password Secret and, for a
 *     server, its etcd member.
 * agent: waits for the server (retrying like k3s), checks the CA hash and the token (401), then registers.
 * registration: /etc/rancher/node/password against Secret kube-system/<node>.node-password.k3s (created
 * when absent; a mismatch is retried with k3s's "Node password rejected" message until the Node is
 * deleted); a kubelet client certificate (system:node:<name>) signed with the cluster's client CA; the
 * Node created with that identity (labels/taints from config only at creation); kwok keeps its status and
 * Lease (--manage-single-node) until this process ends.
 * Startup progress goes to <root>/run/k3s-sim/<unit>.state (systemctl / install.sh read it) and to
 * $K3S_SIM_CLUSTER/join.log (an observation log; the cluster state is only in etcd).
 */
const fs = require("fs");
const path = require("path");
const U = require("./util");
const Config = require("./config");
const yaml = require("./yaml");
const P = require("./pki");
const A = require("./api");
const C = require("./components");

const NODE_PASSWORD_REJECTED =
  "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-password entry, try enabling a unique node name with the --with-node-id flag";
const BOOTSTRAP_SECRET = "/api/v1/namespaces/kube-system/secrets/k3s-bootstrap";
const SERVER = "/var/lib/rancher/k3s/server";
const AGENT = "/var/lib/rancher/k3s/agent";

function ts() {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}
function logLine(level, msg) {
  process.stderr.write(`time="${ts()}" level=${level} msg=${JSON.stringify(msg)}\n`);
}
const log = { info: (m) => logLine("info", m), warn: (m) => logLine("warning", m), error: (m) => logLine("error", m) };

function unitOf(role) {
  return role === "server" ? "k3s" : "k3s-agent";
}
function stateFile(role) {
  return U.nodePath(`/run/k3s-sim/${unitOf(role)}.state`);
}
function runtimeFile() {
  return U.nodePath("/run/k3s-sim/daemon.json");
}
function setState(role, phase, message) {
  U.writeJson(stateFile(role), { phase, message: message || "", pid: process.pid, ts: Date.now() });
}
function b64(s) {
  return Buffer.from(s, "utf8").toString("base64");
}
function archLabel() {
  return { x64: "amd64", arm64: "arm64", arm: "arm" }[process.arch] || process.arch;
}
function parseTaint(s) {
  const m = /^([^=:]+)(?:=([^:]*))?:(.+)$/.exec(s);
  if (!m) throw new Error(`invalid taint spec: ${s}`);
  if (!["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(m[3])) throw new Error(`invalid taint effect: ${m[3]}, unsupported taint effect`);
  return m[2] !== undefined && m[2] !== "" ? { key: m[1], value: m[2], effect: m[3] } : { key: m[1], effect: m[3] };
}
function parseLabel(s) {
  const i = s.indexOf("=");
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

/** Kubeconfig text in the layout k3s writes (everything named "default"). */
function kubeconfigText(server, ca, user) {
  const u = user.certData ? { "client-certificate-data": b64(user.certData), "client-key-data": b64(user.keyData) } : { "client-certificate": user.certFile, "client-key": user.keyFile };
  const cluster = ca.file ? { "certificate-authority": ca.file, server } : { "certificate-authority-data": b64(ca.data), server };
  return yaml.stringify({
    apiVersion: "v1",
    clusters: [{ cluster, name: "default" }],
    contexts: [{ context: { cluster: "default", user: "default" }, name: "default" }],
    "current-context": "default",
    kind: "Config",
    preferences: {},
    users: [{ name: "default", user: u }],
  });
}

function octalMode(v, dflt) {
  if (v === undefined || v === null || v === "") return dflt;
  const s = String(v);
  if (!/^[0-7]{3,4}$/.test(s)) throw new Error(`invalid write-kubeconfig-mode ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function durationSeconds(v) {
  return `${Math.max(1, Math.round(v))}s`;
}

class Daemon {
  constructor(role, args) {
    this.role = role;
    this.args = args;
    this.S = U.settings();
    this.stopping = false;
  }

  p(rel) {
    return U.nodePath(rel);
  }

  async fatal(msg) {
    logLine("fatal", msg);
    this.stopping = true;
    try {
      setState(this.role, "failed", msg);
      if (this.cluster && this.cfg) U.joinLog(this.cluster, this.cfg.nodeName, this.role, "failed", msg);
      fs.rmSync(runtimeFile(), { force: true });
    } catch {
      // best effort
    }
    await C.stopAll(3000);
    process.exit(1);
  }

  event(name, detail) {
    if (this.cluster) U.joinLog(this.cluster, this.cfg.nodeName, this.role, name, detail);
  }

  /** A component ended on its own: k3s exits with it (systemd would restart k3s). */
  onComponentExit(name) {
    return (code, signal, lastLines) => {
      if (this.stopping) return;
      const last = lastLines.split("\n").filter((l) => /error|fatal|removed|panic/i.test(l)).pop() || lastLines.split("\n").pop() || "";
      // etcd logs this when its peers tell it that it was removed, then stops (exit code 0)
      const removed = name === "etcd" && /permanently removed from the cluster/.test(lastLines);
      void this.fatal(removed ? "starting kubernetes: preparing server: start managed database: etcdserver: the member has been permanently removed from the cluster" : `${name} exited (${signal || `code ${code}`}): ${last}`);
    };
  }

  async run() {
    log.info(`Starting k3s ${this.S.version} (k3s-sim supervisor over kube-apiserver/etcd/kwok)`);
    setState(this.role, "starting");
    this.cluster = this.S.cluster || "";
    if (this.cluster) fs.mkdirSync(this.cluster, { recursive: true });
    try {
      this.cfg = Config.load(this.role, this.args);
    } catch (e) {
      return this.fatal(e.message.startsWith("Incorrect Usage") ? e.message : `Error: ${e.message}`);
    }
    for (const w of this.cfg.warnings) log.warn(w);
    const cfg = this.cfg;
    if (cfg.values["with-node-id"]) return this.fatal("k3s-sim: --with-node-id is not simulated");
    U.writeJson(runtimeFile(), { ...U.selfRecord(), role: this.role, node: cfg.nodeName, nodeIp: cfg.nodeIp, startedAt: Date.now() });
    this.event("start");
    const onSignal = async (sig) => {
      if (this.stopping) return;
      this.stopping = true;
      log.info(`Received ${sig}, shutting down`);
      try {
        this.event("stopped", sig);
        fs.rmSync(runtimeFile(), { force: true });
        setState(this.role, "stopped");
      } catch {
        // best effort
      }
      await C.stopAll(5000);
      process.exit(0);
    };
    process.on("SIGTERM", () => void onSignal("SIGTERM"));
    process.on("SIGINT", () => void onSignal("SIGINT"));

    if (cfg.token !== undefined) {
      try {
        this.token = P.parseToken(cfg.token);
      } catch (e) {
        return this.fatal(e.message);
      }
    }
    if (this.role === "server") {
      await this.server();
    } else {
      await this.agentConnect();
    }
    await this.register();
  }

  // ------------------------------------------------------------------ server

  tls(f) {
    return this.p(`${SERVER}/tls/${f}`);
  }

  async server() {
    const cfg = this.cfg;
    const dataDir = this.p(`${SERVER}/db/etcd`);
    const restart = fs.existsSync(path.join(dataDir, "member"));
    if (restart) await this.restartServer();
    else if (cfg.clusterInit || !cfg.serverUrl) await this.initServer();
    else await this.joinServer();
    this.writeServerFiles();
    this.startNodeRemovalController();
  }

  writePki(pki) {
    const w = (f, s, mode) => U.writeAtomic(this.tls(f), s, mode);
    w("server-ca.crt", pki.serverCa.crt, 0o644);
    w("server-ca.key", pki.serverCa.key, 0o600);
    w("client-ca.crt", pki.clientCa.crt, 0o644);
    w("client-ca.key", pki.clientCa.key, 0o600);
    w("etcd/server-ca.crt", pki.etcdCa.crt, 0o644);
    w("etcd/server-ca.key", pki.etcdCa.key, 0o600);
    w("service.key", pki.saKey, 0o600);
    w("service.pub", pki.saPub, 0o644);
    w("client-admin.crt", pki.admin.crt, 0o644);
    w("client-admin.key", pki.admin.key, 0o600);
  }

  readPki() {
    const r = (f) => fs.readFileSync(this.tls(f), "utf8");
    return {
      serverCa: { crt: r("server-ca.crt"), key: r("server-ca.key") },
      clientCa: { crt: r("client-ca.crt"), key: r("client-ca.key") },
      etcdCa: { crt: r("etcd/server-ca.crt"), key: r("etcd/server-ca.key") },
      saKey: r("service.key"),
      saPub: r("service.pub"),
      admin: { crt: r("client-admin.crt"), key: r("client-admin.key") },
    };
  }

  /** This server's own certificates (serving certs for its address, component client certs). */
  writeNodeCerts(pki) {
    const cfg = this.cfg;
    const ip = cfg.nodeIp;
    const san = (x) => (/^[\d.]+$/.test(x) || x.includes(":") ? `IP:${x}` : `DNS:${x}`);
    const svcIp = this.serviceIp();
    const apiSans = [...new Set([ip, "127.0.0.1", svcIp, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", cfg.nodeName, ...cfg.tlsSan])].map(san);
    const serving = P.sign(pki.serverCa, { cn: "kube-apiserver" }, { sans: apiSans, usage: "server" });
    // the chain (leaf + CA) so that a joiner can take the CA from the handshake, as from k3s's /cacerts
    U.writeAtomic(this.tls("serving-kube-apiserver.crt"), serving.crt + pki.serverCa.crt, 0o644);
    U.writeAtomic(this.tls("serving-kube-apiserver.key"), serving.key, 0o600);
    const etcdServer = P.sign(pki.etcdCa, { cn: `etcd-${cfg.nodeName}` }, { sans: [`IP:${ip}`, "IP:127.0.0.1", "DNS:localhost"], usage: "both" });
    U.writeAtomic(this.tls("etcd/server.crt"), etcdServer.crt, 0o644);
    U.writeAtomic(this.tls("etcd/server.key"), etcdServer.key, 0o600);
    const etcdClient = P.sign(pki.etcdCa, { cn: "etcd-client" }, { usage: "client" });
    U.writeAtomic(this.tls("etcd/client.crt"), etcdClient.crt, 0o644);
    U.writeAtomic(this.tls("etcd/client.key"), etcdClient.key, 0o600);
    for (const [name, cn] of [
      ["controller", "system:kube-controller-manager"],
      ["scheduler", "system:kube-scheduler"],
    ]) {
      const c = P.sign(pki.clientCa, { cn }, { usage: "client" });
      U.writeAtomic(this.tls(`client-${name}.crt`), c.crt, 0o644);
      U.writeAtomic(this.tls(`client-${name}.key`), c.key, 0o600);
      U.writeAtomic(
        this.p(`${SERVER}/cred/${name}.kubeconfig`),
        kubeconfigText(this.apiUrl(), { file: this.tls("server-ca.crt") }, { certFile: this.tls(`client-${name}.crt`), keyFile: this.tls(`client-${name}.key`) }),
        0o600,
      );
    }
    U.writeAtomic(this.p(`${SERVER}/cred/admin.kubeconfig`), kubeconfigText(this.apiUrl(), { file: this.tls("server-ca.crt") }, { certFile: this.tls("client-admin.crt"), keyFile: this.tls("client-admin.key") }), 0o600);
  }

  serviceIp() {
    const cidr = String(this.cfg.values["service-cidr"] || "10.43.0.0/16").split(",")[0];
    const o = cidr.split("/")[0].split(".").map(Number);
    return `${o[0]}.${o[1]}.${o[2]}.${o[3] + 1}`;
  }

  apiUrl() {
    return `https://${this.cfg.nodeIp}:6443`;
  }

  admin() {
    const pki = this.pki;
    return A.client({ server: this.apiUrl(), ca: pki.serverCa.crt, cert: pki.admin.crt, key: pki.admin.key });
  }

  etcdEnv() {
    return { ETCDCTL_API: "3", ETCDCTL_CACERT: this.tls("etcd/server-ca.crt"), ETCDCTL_CERT: this.tls("etcd/client.crt"), ETCDCTL_KEY: this.tls("etcd/client.key") };
  }

  etcdctl(endpoints, args) {
    return C.run(["etcdctl", `--endpoints=${endpoints.join(",")}`, "--dial-timeout=5s", "--command-timeout=15s", ...args], { env: this.etcdEnv() });
  }

  /** Start this server's etcd member. state: "new" | "existing" | "restart". */
  startEtcd(name, state, initialCluster) {
    const ip = this.cfg.nodeIp;
    const argv = [
      "etcd",
      `--name=${name}`,
      `--data-dir=${this.p(`${SERVER}/db/etcd`)}`,
      `--listen-client-urls=https://${ip}:2379`,
      `--advertise-client-urls=https://${ip}:2379`,
      `--listen-peer-urls=https://${ip}:2380`,
      `--initial-advertise-peer-urls=https://${ip}:2380`,
      `--cert-file=${this.tls("etcd/server.crt")}`,
      `--key-file=${this.tls("etcd/server.key")}`,
      `--trusted-ca-file=${this.tls("etcd/server-ca.crt")}`,
      "--client-cert-auth=true",
      `--peer-cert-file=${this.tls("etcd/server.crt")}`,
      `--peer-key-file=${this.tls("etcd/server.key")}`,
      `--peer-trusted-ca-file=${this.tls("etcd/server-ca.crt")}`,
      "--peer-client-cert-auth=true",
      // a shared 2-core machine: etcd's 100 ms / 1 s defaults make elections flap under load
      `--heartbeat-interval=${this.S.etcdHeartbeatMs}`,
      `--election-timeout=${this.S.etcdElectionMs}`,
      "--logger=zap",
      "--log-outputs=stderr",
    ];
    if (state !== "restart") argv.push(`--initial-cluster=${initialCluster}`, `--initial-cluster-state=${state}`, "--initial-cluster-token=k3s-etcd");
    C.start("etcd", argv, { logDir: this.p(`${SERVER}/logs`), onExit: this.onComponentExit("etcd") });
  }

  async waitEtcdHealthy(ms) {
    const e = A.client({ server: `https://${this.cfg.nodeIp}:2379`, ca: this.pki.etcdCa.crt, cert: fs.readFileSync(this.tls("etcd/client.crt")), key: fs.readFileSync(this.tls("etcd/client.key")), timeoutMs: 5000 });
    const deadline = Date.now() + ms;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const r = await e.get("/health");
        if (r.status === 200 && r.body && r.body.health === "true") return;
        last = r.text;
      } catch (err) {
        last = err.message;
      }
      await U.sleep(300);
    }
    return this.fatal(`starting kubernetes: preparing server: start managed database: etcd did not become healthy in ${ms / 1000}s: ${last}`);
  }

  startApiserver() {
    const cfg = this.cfg;
    const ip = cfg.nodeIp;
    const argv = [
      "kube-apiserver",
      `--advertise-address=${ip}`,
      `--bind-address=${ip}`,
      "--secure-port=6443",
      // 127.x is not accepted as a kubernetes Service endpoint; k3s's own reconciler is not reproduced
      "--endpoint-reconciler-type=none",
      `--etcd-servers=https://${ip}:2379`,
      `--etcd-cafile=${this.tls("etcd/server-ca.crt")}`,
      `--etcd-certfile=${this.tls("etcd/client.crt")}`,
      `--etcd-keyfile=${this.tls("etcd/client.key")}`,
      `--client-ca-file=${this.tls("client-ca.crt")}`,
      `--tls-cert-file=${this.tls("serving-kube-apiserver.crt")}`,
      `--tls-private-key-file=${this.tls("serving-kube-apiserver.key")}`,
      `--token-auth-file=${this.p(`${SERVER}/cred/passwd`)}`,
      "--anonymous-auth=false",
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${this.tls("service.pub")}`,
      `--service-account-signing-key-file=${this.tls("service.key")}`,
      `--service-cluster-ip-range=${cfg.values["service-cidr"] || "10.43.0.0/16"}`,
      "--profiling=false",
      "--allow-privileged=true",
    ];
    C.start("kube-apiserver", argv, { logDir: this.p(`${SERVER}/logs`), onExit: this.onComponentExit("kube-apiserver") });
  }

  async waitApiserver(ms) {
    const api = this.admin();
    const deadline = Date.now() + ms;
    let last = "";
    while (Date.now() < deadline) {
      try {
        const r = await api.get("/readyz");
        if (r.status === 200) return;
        last = `${r.status} ${r.text.split("\n").filter((l) => l.includes("failed")).join("; ")}`;
      } catch (e) {
        last = e.message;
      }
      await U.sleep(300);
    }
    return this.fatal(`starting kubernetes: kube-apiserver not ready after ${ms / 1000}s: ${last}`);
  }

  /**
   * A controller that loses its leader lease (e.g. etcd without quorum) exits, as it is built to; k3s then
   * exits too and systemd restarts it. The lab has no systemd, so the supervisor restarts the controller
   * (after 2 s), keeping etcd and the apiserver up.
   */
  restartOnExit(name, startFn) {
    return (code, signal, lastLines) => {
      if (this.stopping) return;
      const last = lastLines.split("\n").filter((l) => /lost|error|fatal/i.test(l)).pop() || lastLines.split("\n").pop() || "";
      log.warn(`${name} exited (${signal || `code ${code}`}): ${last}; restarting it`);
      setTimeout(() => {
        if (!this.stopping) startFn();
      }, 2000).unref();
    };
  }

  startControllers() {
    this.startControllerManager();
    this.startScheduler();
  }

  startControllerManager() {
    const cfg = this.cfg;
    const ip = cfg.nodeIp;
    const logDir = this.p(`${SERVER}/logs`);
    const ctrl = this.p(`${SERVER}/cred/controller.kubeconfig`);
    C.start(
      "kube-controller-manager",
      [
        "kube-controller-manager",
        `--kubeconfig=${ctrl}`,
        `--authentication-kubeconfig=${ctrl}`,
        `--authorization-kubeconfig=${ctrl}`,
        `--bind-address=${ip}`,
        "--leader-elect=true",
        "--use-service-account-credentials=true",
        `--service-account-private-key-file=${this.tls("service.key")}`,
        `--root-ca-file=${this.tls("server-ca.crt")}`,
        `--cluster-signing-cert-file=${this.tls("client-ca.crt")}`,
        `--cluster-signing-key-file=${this.tls("client-ca.key")}`,
        "--allocate-node-cidrs=true",
        `--cluster-cidr=${cfg.values["cluster-cidr"] || "10.42.0.0/16"}`,
        `--service-cluster-ip-range=${cfg.values["service-cidr"] || "10.43.0.0/16"}`,
        `--node-monitor-grace-period=${durationSeconds(this.S.graceSeconds)}`,
        "--node-monitor-period=1s",
        "--profiling=false",
      ],
      { logDir, onExit: this.restartOnExit("kube-controller-manager", () => this.startControllerManager()) },
    );
  }

  startScheduler() {
    const ip = this.cfg.nodeIp;
    const sched = this.p(`${SERVER}/cred/scheduler.kubeconfig`);
    C.start(
      "kube-scheduler",
      ["kube-scheduler", `--kubeconfig=${sched}`, `--authentication-kubeconfig=${sched}`, `--authorization-kubeconfig=${sched}`, `--bind-address=${ip}`, "--leader-elect=true", "--profiling=false"],
      { logDir: this.p(`${SERVER}/logs`), onExit: this.restartOnExit("kube-scheduler", () => this.startScheduler()) },
    );
  }

  writePasswd(password) {
    // k3s keeps the token's password in server/cred/passwd (its supervisor's basic-auth file); here the
    // apiserver's static token file, so that the real apiserver checks the token of joining nodes
    U.writeAtomic(this.p(`${SERVER}/cred/passwd`), `${password},k3s-token,k3s-token,k3s:token\n`, 0o600);
  }

  async initServer() {
    const cfg = this.cfg;
    if (this.token && this.token.caHash) {
      return this.fatal("starting kubernetes: preparing server: failed to bootstrap cluster data: a full (K10) token can only be used to create a cluster with a custom CA; use the bare password");
    }
    this.password = this.token ? this.token.password : U.randomHex(16);
    log.info(cfg.clusterInit ? "Managed etcd cluster initializing" : "Managed etcd cluster initializing (k3s would use sqlite without cluster-init: this cluster cannot be joined by another server)");
    this.pki = P.newClusterPki();
    this.writePki(this.pki);
    this.writeNodeCerts(this.pki);
    this.writePasswd(this.password);
    const member = `${cfg.nodeName}-${U.randomHex(4)}`;
    U.writeAtomic(this.p(`${SERVER}/db/etcd-name`), member + "\n", 0o600);
    this.startEtcd(member, "new", `${member}=https://${cfg.nodeIp}:2380`);
    await this.waitEtcdHealthy(60000);
    this.member = member;
    this.event("etcd-member", member);
    this.startApiserver();
    await this.waitApiserver(120000);
    const api = this.admin();
    const boot = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "k3s-bootstrap", namespace: "kube-system", annotations: { "k3s.io/datastore": cfg.clusterInit ? "etcd" : "sqlite" } },
      type: "k3s.cattle.io/bootstrap",
      data: {
        "server-ca.crt": b64(this.pki.serverCa.crt),
        critical: b64(JSON.stringify(cfg.critical)),
        encrypted: b64(JSON.stringify(P.encrypt(this.password, this.pki))),
      },
    };
    await this.apply(api, "/api/v1/namespaces/kube-system/secrets", boot, "k3s-bootstrap");
    // what the token may do: read the bootstrap data, read/create node-password Secrets
    await this.apply(api, "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "k3s-token", namespace: "kube-system" },
      rules: [
        { apiGroups: [""], resources: ["secrets"], verbs: ["get"] },
        { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      ],
    }, "k3s-token");
    await this.apply(api, "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "k3s-token", namespace: "kube-system" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "k3s-token" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "k3s:token" }],
    }, "k3s-token");
    // kwok lists and watches all Nodes and Leases (a kubelet reads only its own since the Node
    // authorizer's selector rules): the node agents' group may
    await this.apply(api, "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: "k3s-sim:node-agent" },
      rules: [
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["coordination.k8s.io"], resources: ["leases"], verbs: ["get", "list", "watch"] },
      ],
    }, "k3s-sim:node-agent");
    await this.apply(api, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "k3s-sim:node-agent" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "k3s-sim:node-agent" },
      subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:nodes" }],
    }, "k3s-sim:node-agent");
    this.startControllers();
  }

  async apply(api, collection, obj, name) {
    for (let i = 0; ; i++) {
      const r = await api.post(collection, obj);
      if (r.status === 201 || r.status === 409) return;
      // RBAC objects may not be creatable for a moment right after /readyz
      if (i >= 20) return this.fatal(`creating ${collection}/${name}: ${r.status} ${r.text.slice(0, 300)}`);
      await U.sleep(500);
    }
  }

  /** The server named by `server:` : its CA (K10 hash checked) and the bootstrap data (token checked by its apiserver). */
  async fetchBootstrap(forever) {
    const cfg = this.cfg;
    const url = new URL(cfg.serverUrl);
    const port = Number(url.port || 443);
    const deadline = Date.now() + this.S.connectRetrySeconds * 1000;
    let ca;
    let announced = false;
    for (;;) {
      try {
        ca = await A.fetchServerCa(url.hostname, port);
        break;
      } catch (e) {
        const msg = `failed to get CA certs: Get "${url.origin}/cacerts": ${e.message}`;
        if (!forever && Date.now() > deadline) return this.fatal(`Error: preparing server: failed to validate connection to cluster at ${cfg.serverUrl}: ${msg}`);
        log.error(forever ? `Failed to validate connection to cluster at ${cfg.serverUrl}: ${msg}` : msg);
        if (!announced) {
          setState(this.role, "error", `${msg} (retrying)`);
          announced = true;
        }
        await U.sleep(1000);
      }
    }
    const caHash = P.sha256hex(ca);
    if (this.token.caHash && this.token.caHash !== caHash) {
      return this.fatal(`Error: failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${this.token.caHash} != ${caHash}`);
    }
    if (!this.token.caHash) log.warn("Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash. Use the full token from the server's node-token file to enable Cluster CA validation.");
    const api = A.client({ server: url.origin, ca, token: this.token.password });
    let r;
    for (;;) {
      try {
        r = await api.get(BOOTSTRAP_SECRET);
      } catch (e) {
        r = { status: 0, text: e.message };
      }
      if (r.status === 200 || r.status === 401 || r.status === 403) break;
      if (!forever && Date.now() > deadline) return this.fatal(`failed to get bootstrap data: ${api.url(BOOTSTRAP_SECRET)}: ${r.status || ""} ${r.text.slice(0, 200)}`);
      await U.sleep(1000);
    }
    if (r.status !== 200) {
      const what = `${api.url(BOOTSTRAP_SECRET)}: ${r.status} ${r.status === 401 ? "Unauthorized" : "Forbidden"}`;
      if (this.role === "agent") return this.fatal(`Error: token is not valid: ${what}`);
      return this.fatal(`starting kubernetes: preparing server: failed to get bootstrap data: ${what}`);
    }
    const d = r.body.data;
    const pki = P.decrypt(this.token.password, JSON.parse(Buffer.from(d.encrypted, "base64").toString("utf8")));
    if (!pki) return this.fatal(`starting kubernetes: preparing server: failed to get bootstrap data: ${api.url(BOOTSTRAP_SECRET)}: bootstrap data cannot be decrypted with this token`);
    return { ca, pki, critical: JSON.parse(Buffer.from(d.critical, "base64").toString("utf8")), datastore: (r.body.metadata.annotations || {})["k3s.io/datastore"], api, host: url.hostname };
  }

  async joinServer() {
    const cfg = this.cfg;
    if (!this.token) return this.fatal("Error: --token is required when joining a server to a cluster (set token or token-file)");
    const b = await this.fetchBootstrap(false);
    if (b.datastore !== "etcd") return this.fatal(`starting kubernetes: preparing server: ${cfg.serverUrl} does not run embedded etcd (it was started without cluster-init): another server cannot join it`);
    log.info("Managed etcd cluster not yet initialized");
    const mismatched = Object.keys(b.critical).filter((k) => JSON.stringify(b.critical[k]) !== JSON.stringify(cfg.critical[k]));
    if (mismatched.length) {
      for (const k of mismatched) log.error(`Critical configuration mismatched: ${k}`);
      return this.fatal("starting kubernetes: preparing server: failed to bootstrap cluster data: failed to validate server configuration: critical configuration value mismatch between servers");
    }
    this.pki = b.pki;
    this.password = this.token.password;
    this.writePki(this.pki);
    this.writeNodeCerts(this.pki);
    this.writePasswd(this.password);
    const member = `${cfg.nodeName}-${U.randomHex(4)}`;
    const peer = `https://${cfg.nodeIp}:2380`;
    const ep = [`https://${b.host}:2379`];
    const add = await this.etcdctl(ep, ["member", "add", member, `--peer-urls=${peer}`, "--learner"]);
    if (add.code !== 0) {
      fs.rmSync(this.p(`${SERVER}/tls`), { recursive: true, force: true });
      return this.fatal(`ETCD join failed: ${(add.stderr.trim().split("\n").pop() || "").replace(/^\{.*"error":"([^"]+)".*$/, "$1").replace(/^Error: /, "")}`);
    }
    const initial = (/ETCD_INITIAL_CLUSTER="([^"]*)"/.exec(add.stdout) || [])[1];
    // etcdctl prints the id with %16x: an id under 16 hex digits is space-padded ("Member  5b2e… added")
    const id = (/Member\s+([0-9a-f]+)\s+added/.exec(add.stdout) || [])[1];
    if (!id) return this.fatal(`ETCD join failed: cannot read the new member's id from etcdctl member add: ${add.stdout.trim().slice(0, 200)}`);
    U.writeAtomic(this.p(`${SERVER}/db/etcd-name`), member + "\n", 0o600);
    log.info(`Adding member ${member}=${peer} to etcd cluster as a learner`);
    this.event("etcd-learner", member);
    setState(this.role, "starting", "etcd learner catching up");
    this.startEtcd(member, "existing", initial);
    await this.promote(ep, id, member);
  }

  /** Promote our learner once etcd says it is in sync (k3s's learner promotion loop). */
  async promote(ep, id, member) {
    const deadline = Date.now() + 120000;
    await U.sleep(this.S.joinSeconds * 1000);
    for (;;) {
      const r = await this.etcdctl(ep, ["member", "promote", id]);
      if (r.code === 0 || /is not a learner/.test(r.stderr)) break;
      if (/member not found|permanently removed/.test(r.stderr)) return this.fatal("ETCD join failed: etcdserver: the member has been permanently removed from the cluster");
      if (Date.now() > deadline) return this.fatal(`ETCD join failed: learner ${member} not promoted: ${r.stderr.trim().split("\n").pop()}`);
      await U.sleep(1000);
    }
    log.info(`Promoted learner ${member} to voting member`);
    this.member = member;
    this.event("etcd-member", member);
    await this.waitEtcdHealthy(60000);
    this.startApiserver();
    await this.waitApiserver(120000);
    this.startControllers();
  }

  async restartServer() {
    const cfg = this.cfg;
    try {
      this.pki = this.readPki();
    } catch (e) {
      return this.fatal(`starting kubernetes: preparing server: etcd data without its certificates: ${e.message}`);
    }
    let password = this.token && this.token.password;
    if (!password) {
      try {
        password = P.parseToken(fs.readFileSync(this.p(`${SERVER}/token`), "utf8").trim()).password;
      } catch {
        password = undefined;
      }
    }
    if (this.token && this.token.caHash && this.token.caHash !== P.sha256hex(this.pki.serverCa.crt)) {
      return this.fatal(`failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${this.token.caHash} != ${P.sha256hex(this.pki.serverCa.crt)}`);
    }
    if (!password) return this.fatal("starting kubernetes: preparing server: no token configured and none on disk");
    this.writePasswd(password);
    const member = fs.readFileSync(this.p(`${SERVER}/db/etcd-name`), "utf8").trim();
    this.writeNodeCerts(this.pki);
    log.info("Reconciling bootstrap data between datastore and disk");
    this.startEtcd(member, "restart");
    // a member that was a learner when it stopped finishes its promotion
    const ep = [`https://${cfg.nodeIp}:2379`];
    const list = await this.memberList(ep);
    const me = list.find((m) => m.name === member);
    if (me && me.learner) {
      const others = list.filter((m) => !m.learner && m.clientUrl).map((m) => m.clientUrl);
      await this.promote(others.length ? others : ep, me.id, member);
    } else {
      await this.waitEtcdHealthy(60000);
      this.member = member;
      this.event("etcd-member", member);
      this.startApiserver();
      await this.waitApiserver(120000);
      this.startControllers();
    }
    const r = await this.admin().get(BOOTSTRAP_SECRET);
    if (r.status !== 200) return this.fatal(`starting kubernetes: preparing server: failed to read bootstrap data: ${r.status} ${r.text.slice(0, 200)}`);
    if (!P.decrypt(password, JSON.parse(Buffer.from(r.body.data.encrypted, "base64").toString("utf8")))) {
      return this.fatal("starting kubernetes: preparing server: failed to reconcile with local datastore: bootstrap data already found and encrypted with different token");
    }
    this.password = password;
  }

  /** etcd members: [{id, name, peerUrl, clientUrl, learner}] (etcdctl's table output keeps ids exact). */
  async memberList(ep) {
    for (let i = 0; i < 30; i++) {
      const r = await this.etcdctl(ep, ["member", "list"]);
      if (r.code === 0) {
        return r.stdout
          .trim()
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split(", "))
          .map(([id, , name, peerUrl, clientUrl, learner]) => ({ id, name, peerUrl, clientUrl, learner: learner === "true" }));
      }
      await U.sleep(1000);
    }
    return [];
  }

  writeServerFiles() {
    const cfg = this.cfg;
    U.writeAtomic(this.p(`${SERVER}/token`), `K10${P.sha256hex(this.pki.serverCa.crt)}::server:${this.password}\n`, 0o600);
    const legacy = this.p(`${SERVER}/node-token`);
    fs.rmSync(legacy, { force: true });
    fs.symlinkSync(`${SERVER}/token`, legacy);
    let mode;
    try {
      mode = octalMode(cfg.values["write-kubeconfig-mode"], 0o600);
    } catch (e) {
      return this.fatal(e.message);
    }
    const kc = cfg.values["write-kubeconfig"] ? path.resolve("/", String(cfg.values["write-kubeconfig"])) : "/etc/rancher/k3s/k3s.yaml";
    U.writeAtomic(this.p(kc), kubeconfigText("https://127.0.0.1:6443", { data: this.pki.serverCa.crt }, { certData: this.pki.admin.crt, keyData: this.pki.admin.key }), mode);
    log.info(`Wrote kubeconfig ${kc}`);
    return undefined;
  }

  /**
   * k3s's node controllers on the server (k3s pkg/etcd/member_controller.go, pkg/nodepassword/controller.go):
   * - an etcd Node gets the finalizer wrangler.cattle.io/managed-etcd-controller; when it is deleted, its
   *   member (annotation etcd.k3s.cattle.io/node-name) is removed from etcd, then the finalizer;
   * - a node-password Secret gets an ownerReference to its Node, so the garbage collector removes it with
   *   the Node.
   */
  startNodeRemovalController() {
    const api = this.admin();
    const ep = [`https://${this.cfg.nodeIp}:2379`];
    const FIN = "wrangler.cattle.io/managed-etcd-controller";
    const tick = async () => {
      if (this.stopping) return;
      try {
        const r = await api.get("/api/v1/nodes");
        for (const n of r.status === 200 ? r.body.items : []) {
          const md = n.metadata;
          const fins = md.finalizers || [];
          const etcd = (md.labels || {})["node-role.kubernetes.io/etcd"] === "true";
          if (md.deletionTimestamp) {
            if (!fins.includes(FIN)) continue;
            const member = (md.annotations || {})["etcd.k3s.cattle.io/node-name"];
            log.info(`Removing etcd member ${md.name} from cluster`);
            const m = member ? (await this.memberList(ep)).find((x) => x.name === member) : undefined;
            if (m) {
              const rm = await this.etcdctl(ep, ["member", "remove", m.id]);
              if (rm.code !== 0 && !/member not found/.test(rm.stderr)) throw new Error(rm.stderr);
            }
            await api.patch(`/api/v1/nodes/${md.name}`, { metadata: { finalizers: fins.filter((f) => f !== FIN), resourceVersion: md.resourceVersion } });
            continue;
          }
          if (etcd && !fins.includes(FIN)) await api.patch(`/api/v1/nodes/${md.name}`, { metadata: { finalizers: [...fins, FIN], resourceVersion: md.resourceVersion } });
          const sp = `/api/v1/namespaces/kube-system/secrets/${md.name}.node-password.k3s`;
          const s = await api.get(sp);
          if (s.status === 200 && !(s.body.metadata.ownerReferences || []).some((o) => o.uid === md.uid)) {
            log.info(`Adding node OwnerReference to node-password secret ${md.name}.node-password.k3s`);
            await api.patch(sp, { metadata: { ownerReferences: [...(s.body.metadata.ownerReferences || []), { apiVersion: "v1", kind: "Node", name: md.name, uid: md.uid }] } });
          }
        }
      } catch (e) {
        log.warn(`node controller: ${e.message}`);
      }
      setTimeout(() => void tick(), 1000).unref();
    };
    void tick();
  }

  // ------------------------------------------------------------------ agent

  async agentConnect() {
    if (!this.cfg.serverUrl) return this.fatal("Error: --server is required");
    if (!this.token) return this.fatal("Error: --token is required");
    const b = await this.fetchBootstrap(true);
    this.pki = b.pki;
    this.bootApi = b.api;
  }

  // ------------------------------------------------------------------ registration (both roles)

  async register() {
    const cfg = this.cfg;
    let labels;
    let taints;
    try {
      labels = Object.fromEntries(cfg.labels.map(parseLabel));
      taints = cfg.taints.map(parseTaint);
    } catch (e) {
      return this.fatal(`failed to validate kubelet flags: ${e.message}`);
    }
    const pwFile = this.p("/etc/rancher/node/password");
    let pw = "";
    try {
      pw = fs.readFileSync(pwFile, "utf8").trim();
    } catch {
      pw = "";
    }
    if (!pw) {
      pw = U.randomHex(16);
      fs.mkdirSync(path.dirname(pwFile), { recursive: true, mode: 0o700 });
      U.writeAtomic(pwFile, pw + "\n", 0o600);
    }
    const server = this.role === "server" ? this.apiUrl() : new URL(cfg.serverUrl).origin;
    const kubelet = P.sign(this.pki.clientCa, { cn: `system:node:${cfg.nodeName}`, o: "system:nodes" }, { usage: "client" });
    U.writeAtomic(this.p(`${AGENT}/client-kubelet.crt`), kubelet.crt, 0o644);
    U.writeAtomic(this.p(`${AGENT}/client-kubelet.key`), kubelet.key, 0o600);
    U.writeAtomic(this.p(`${AGENT}/server-ca.crt`), this.pki.serverCa.crt, 0o644);
    // k3s points the kubelet at its local load balancer (127.0.0.1:6443/6444); the lab's nodes share one
    // network namespace, so the kubelet talks to the server's address directly
    U.writeAtomic(
      this.p(`${AGENT}/kubelet.kubeconfig`),
      kubeconfigText(server, { file: this.p(`${AGENT}/server-ca.crt`) }, { certFile: this.p(`${AGENT}/client-kubelet.crt`), keyFile: this.p(`${AGENT}/client-kubelet.key`) }),
      0o600,
    );
    const secrets = this.role === "server" ? this.admin() : this.bootApi;
    const secretPath = `/api/v1/namespaces/kube-system/secrets/${cfg.nodeName}.node-password.k3s`;
    let announced = false;
    for (;;) {
      const r = await secrets.get(secretPath);
      let ok = false;
      if (r.status === 404) {
        const c = await secrets.post("/api/v1/namespaces/kube-system/secrets", {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: `${cfg.nodeName}.node-password.k3s`, namespace: "kube-system" },
          immutable: true,
          type: "k3s.cattle.io/node-password",
          data: { hash: b64(P.hashPassword(pw)) },
        });
        ok = c.status === 201;
        if (!ok && c.status !== 409) return this.fatal(`creating node password secret: ${c.status} ${c.text.slice(0, 200)}`);
      } else if (r.status === 200) {
        ok = P.verifyPassword(pw, Buffer.from((r.body.data && r.body.data.hash) || "", "base64").toString("utf8"));
      } else {
        return this.fatal(`reading node password secret: ${r.status} ${r.text.slice(0, 200)}`);
      }
      if (ok) break;
      log.info(`Waiting to retrieve agent configuration; server is not ready: ${NODE_PASSWORD_REJECTED}`);
      if (!announced) {
        setState(this.role, "error", NODE_PASSWORD_REJECTED);
        this.event("rejected", "node password");
        announced = true;
      }
      await U.sleep(1000);
    }
    const me = A.client({ server, ca: this.pki.serverCa.crt, cert: kubelet.crt, key: kubelet.key });
    await this.ensureNode(me, labels, taints);
    this.event("registered");
    this.startKwok();
    await this.waitReady(me);
    this.event("ready");
    setState(this.role, "ready");
    log.info(this.role === "server" ? "k3s is up and running" : `Node ${cfg.nodeName} is ready`);
  }

  /** Create our Node (kubelet identity) when it does not exist; labels/taints only then. */
  async ensureNode(me, labels, taints) {
    const cfg = this.cfg;
    const annotations = {
      "alpha.kubernetes.io/provided-node-ip": cfg.nodeIp,
      "k3s.io/hostname": cfg.nodeName,
      "k3s.io/internal-ip": cfg.nodeIp,
      "k3s.io/node-args": JSON.stringify(Config.nodeArgs(this.role, cfg)),
      "k3s.io/node-config-hash": U.sha256hex(JSON.stringify(cfg.values)).slice(0, 52).toUpperCase(),
      "node.alpha.kubernetes.io/ttl": "0",
      "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    };
    const r = await me.get(`/api/v1/nodes/${cfg.nodeName}`);
    if (r.status === 200) {
      const p = await me.patch(`/api/v1/nodes/${cfg.nodeName}`, { metadata: { annotations } });
      if (p.status !== 200) return this.fatal(`updating Node ${cfg.nodeName}: ${p.status} ${p.text.slice(0, 300)}`);
    } else {
      const arch = archLabel();
      const node = {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: cfg.nodeName,
          labels: {
            "beta.kubernetes.io/arch": arch,
            "beta.kubernetes.io/instance-type": "k3s",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": arch,
            "kubernetes.io/hostname": cfg.nodeName,
            "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "k3s",
            ...labels,
          },
          annotations,
        },
        spec: taints.length ? { taints } : {},
      };
      const c = await me.post("/api/v1/nodes", node);
      if (c.status !== 201 && c.status !== 409) return this.fatal(`failed to register node ${cfg.nodeName}: ${c.status} ${(c.body && c.body.message) || c.text.slice(0, 300)}`);
      if (this.role === "server") {
        // k3s's server sets the role labels (the kubelet may not: NodeRestriction)
        const roles = { "node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true" };
        const ds = await this.admin().get(BOOTSTRAP_SECRET);
        if (ds.status === 200 && (ds.body.metadata.annotations || {})["k3s.io/datastore"] === "etcd") roles["node-role.kubernetes.io/etcd"] = "true";
        await this.admin().patch(`/api/v1/nodes/${cfg.nodeName}`, { metadata: { labels: roles } });
      }
    }
    if (this.role === "server" && this.member) {
      await this.admin().patch(`/api/v1/nodes/${cfg.nodeName}`, { metadata: { annotations: { "etcd.k3s.cattle.io/node-name": this.member, "etcd.k3s.cattle.io/node-address": cfg.nodeIp } } });
    }
    return undefined;
  }

  startKwok() {
    const cfg = this.cfg;
    const stagesDir = path.join(C.k8sDir(), "stages");
    const stages = this.p(`${AGENT}/kwok-stages.yaml`);
    U.writeAtomic(
      stages,
      ["node-initialize.yaml", "node-heartbeat-with-lease.yaml"].map((f) => fs.readFileSync(path.join(stagesDir, f), "utf8")).join("\n---\n"),
      0o644,
    );
    C.start(
      "kwok",
      [
        "kwok",
        `--kubeconfig=${this.p(`${AGENT}/kubelet.kubeconfig`)}`,
        `--config=${stages}`,
        `--manage-single-node=${cfg.nodeName}`,
        `--node-name=${cfg.nodeName}`,
        `--node-ip=${cfg.nodeIp}`,
        `--server-address=${cfg.nodeIp}:10250`,
        `--node-lease-duration-seconds=${this.S.leaseSeconds}`,
      ],
      { logDir: this.p(`${AGENT}/logs`), onExit: this.onComponentExit("kwok") },
    );
  }

  async waitReady(me) {
    const deadline = Date.now() + 60000;
    for (;;) {
      const r = await me.get(`/api/v1/nodes/${this.cfg.nodeName}`).catch(() => ({ status: 0 }));
      const ready = r.status === 200 && ((r.body.status || {}).conditions || []).some((c) => c.type === "Ready" && c.status === "True");
      if (ready) return;
      if (Date.now() > deadline) return this.fatal(`Node ${this.cfg.nodeName} did not become Ready in 60s (kwok log: ${C.tail(this.p(`${AGENT}/logs/kwok.log`), 3)})`);
      await U.sleep(300);
    }
  }
}

async function runDaemon(role, args) {
  const d = new Daemon(role, args);
  try {
    await d.run();
  } catch (e) {
    await d.fatal(`k3s-sim internal error: ${e && e.stack ? e.stack : String(e)}`);
  }
  // stay up: the children keep the event loop alive
  setInterval(() => undefined, 1 << 30);
}

module.exports = { runDaemon, NODE_PASSWORD_REJECTED, stateFile, runtimeFile, unitOf, kubeconfigText };
