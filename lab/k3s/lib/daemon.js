"use strict";
/**
 * `k3s server` / `k3s agent`: the long-running process of a simulated node.
 *
 * What it does, in k3s's order (messages are k3s's where k3s has one):
 *  1. reads config.yaml + config.yaml.d (config.js) and the token;
 *  2. server with cluster-init (or neither server nor cluster-init: single server, sqlite): creates the
 *     cluster (CA, token password, encrypted bootstrap data), or restarts as its member; a restarted
 *     member whose token no longer decrypts the bootstrap data fails with "bootstrap data already found
 *     and encrypted with different token";
 *     server with `server:`: checks that the URL names a live registered server (host:6443), validates
 *     the token (K10 CA hash, then the password against the bootstrap data: 401), compares the critical
 *     flags, then joins etcd as a learner (refused while another learner exists: "too many learner
 *     members in cluster"), is promoted after K3S_SIM_JOIN_SECONDS;
 *     agent: waits for the server URL to answer (retrying like k3s), validates the token;
 *  3. registers the Node: /etc/rancher/node/password is created on first start and checked against the
 *     kube-system/<node>.node-password.k3s secret; a mismatch is retried with "Node password rejected..."
 *     until the Node is deleted; node-label / node-taint only apply when the Node is created;
 *  4. writes server/token, k3s.yaml (servers) and the kubelet kubeconfig, then heartbeats until stopped.
 * Startup progress goes to <root>/run/k3s-sim/<unit>.state for systemctl / k3s-install.sh, and to
 * <cluster>/join.log with timestamps. The token is never logged.
 */
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const U = require("./util");
const C = require("./cluster");
const Config = require("./config");
const yaml = require("./yaml");

const NODE_PASSWORD_REJECTED =
  "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-password entry, try enabling a unique node name with the --with-node-id flag";

function ts() {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function logLine(level, msg) {
  process.stderr.write(`time="${ts()}" level=${level} msg=${JSON.stringify(msg)}\n`);
}

const log = {
  info: (m) => logLine("info", m),
  warn: (m) => logLine("warning", m),
  error: (m) => logLine("error", m),
};

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
function kubeconfigText(server, caPem, user) {
  const u = user.certData ? { "client-certificate-data": b64(user.certData), "client-key-data": b64(user.keyData) } : { "client-certificate": user.certFile, "client-key": user.keyFile };
  const cluster = caPem.file ? { "certificate-authority": caPem.file, server } : { "certificate-authority-data": b64(caPem.data), server };
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

class Daemon {
  constructor(role, args) {
    this.role = role;
    this.args = args;
    this.S = U.settings();
    this.st = null; // heartbeat record
    this.timer = null;
  }

  fatal(msg) {
    logLine("fatal", msg);
    try {
      setState(this.role, "failed", msg);
      if (this.cluster && this.cfg) U.joinLog(this.cluster, this.cfg.nodeName, this.role, "failed", msg);
      fs.rmSync(runtimeFile(), { force: true });
    } catch {
      // best effort
    }
    process.exit(1);
  }

  beat() {
    if (!this.st) return;
    this.st.lastHeartbeat = Date.now();
    try {
      U.writeJson(C.statusFile(this.cluster, this.cfg.nodeName), this.st);
    } catch (e) {
      log.error(`failed to post node status: ${e.message}`);
    }
  }

  startHeartbeat() {
    this.st = {
      name: this.cfg.nodeName,
      role: this.role,
      ip: this.cfg.nodeIp,
      tlsSan: this.cfg.tlsSan,
      uid: null,
      member: null,
      apiserver: false,
      readySince: null,
      startedAt: Date.now(),
      ...U.selfRecord(),
      lastHeartbeat: Date.now(),
    };
    this.timer = setInterval(() => this.beat(), this.S.heartbeatMs);
  }

  async run() {
    log.info(`Starting k3s ${this.S.version} (k3s-sim)`);
    setState(this.role, "starting");
    try {
      this.cluster = U.requireCluster();
    } catch (e) {
      return this.fatal(e.message);
    }
    try {
      this.cfg = Config.load(this.role, this.args);
    } catch (e) {
      return this.fatal(e.message.startsWith("Incorrect Usage") ? e.message : `Error: ${e.message}`);
    }
    for (const w of this.cfg.warnings) log.warn(w);
    const cfg = this.cfg;
    if (cfg.values["with-node-id"]) return this.fatal("k3s-sim: --with-node-id is not simulated");
    U.writeJson(runtimeFile(), { ...U.selfRecord(), role: this.role, node: cfg.nodeName, startedAt: Date.now() });
    U.joinLog(this.cluster, cfg.nodeName, this.role, "start");
    const onSignal = (sig) => {
      log.info(`Received ${sig}, shutting down`);
      if (this.timer) clearInterval(this.timer);
      try {
        U.joinLog(this.cluster, cfg.nodeName, this.role, "stopped", sig);
        fs.rmSync(runtimeFile(), { force: true });
        setState(this.role, "stopped");
      } catch {
        // best effort
      }
      process.exit(0);
    };
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    process.on("SIGINT", () => onSignal("SIGINT"));

    let parsed;
    if (cfg.token !== undefined) {
      try {
        parsed = C.parseToken(cfg.token);
      } catch (e) {
        return this.fatal(e.message);
      }
    }
    let data;
    if (this.role === "server") {
      data = cfg.clusterInit || !cfg.serverUrl ? this.initOrRestart(parsed) : await this.joinServer(parsed);
      this.writeServerFiles(data);
    } else {
      data = await this.connectAgent(parsed);
      await U.sleep(this.S.agentSeconds * 1000);
    }
    await this.register(data);
  }

  localMarker() {
    return U.readJson(U.nodePath("/var/lib/rancher/k3s/server/db/etcd/member.json"), undefined);
  }

  writeMarker(boot, member) {
    U.writeJson(U.nodePath("/var/lib/rancher/k3s/server/db/etcd/member.json"), { clusterId: boot.clusterId, member, createdAt: new Date().toISOString() }, 0o600);
  }

  /** First server: create the cluster, or restart as a member of the one it created/joined. */
  initOrRestart(parsed) {
    const cfg = this.cfg;
    let password = parsed && parsed.password;
    const marker = this.localMarker();
    if (!password) {
      // a restarted server without a configured token uses the one on disk, as k3s does
      try {
        password = C.parseToken(fs.readFileSync(U.nodePath("/var/lib/rancher/k3s/server/token"), "utf8").trim()).password;
      } catch {
        password = undefined;
      }
    }
    const datastore = cfg.clusterInit ? "etcd" : "sqlite";
    let result;
    let err;
    U.withLock(this.cluster, () => {
      let boot = C.readBootstrap(this.cluster);
      if (boot && marker && marker.clusterId === boot.clusterId) {
        log.info("Reconciling bootstrap data between datastore and disk");
        const data = password ? C.decrypt(password, boot) : undefined;
        if (!data) return void (err = "starting kubernetes: preparing server: failed to reconcile with local datastore: bootstrap data already found and encrypted with different token");
        if (parsed && parsed.caHash && parsed.caHash !== boot.caHash) return void (err = `failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${parsed.caHash} != ${boot.caHash}`);
        const e = C.readEtcd(this.cluster);
        const m = e.members.find((x) => x.name === marker.member);
        if (!m) return void (err = "starting kubernetes: preparing server: start managed database: etcdserver: the member has been permanently removed from the cluster");
        result = { boot, data, member: m.name, password };
        return;
      }
      if (boot) {
        const q = C.quorum(this.cluster);
        if (q.up > 0) {
          return void (err =
            `k3s-sim: cluster-init on ${cfg.nodeName}, but K3S_SIM_CLUSTER already holds a running cluster (created by ${boot.initNode}); ` +
            "the simulation holds one cluster per lab: join it with `server: https://<first server>:6443` instead, or uninstall its servers first");
        }
        const dest = C.archiveCluster(this.cluster);
        log.info(`k3s-sim: previous cluster (no server left running) archived to ${dest}`);
      }
      if (parsed && parsed.caHash) {
        return void (err = "starting kubernetes: preparing server: failed to bootstrap cluster data: a full (K10) token can only be used to create a cluster with a custom CA; use the bare password");
      }
      if (!password) password = U.randomHex(16);
      log.info(cfg.clusterInit ? "Managed etcd cluster initializing" : "Configuring sqlite3 database connection pooling: maxIdleConns=2, maxOpenConns=0, connMaxLifetime=0s");
      const created = C.createCluster(this.cluster, { password, initNode: cfg.nodeName, critical: cfg.critical, datastore });
      boot = created.boot;
      const member = `${cfg.nodeName}-${U.randomHex(4)}`;
      C.writeEtcd(this.cluster, { members: [{ name: member, node: cfg.nodeName, peerURL: `https://${cfg.nodeIp}:2380`, isLearner: false, addedAt: new Date().toISOString(), datastore }] });
      this.writeMarker(boot, member);
      result = { boot, data: created.pki, member, password };
    });
    if (err) return this.fatal(err);
    this.startHeartbeat();
    this.st.member = result.member;
    this.st.apiserver = true;
    this.beat();
    U.joinLog(this.cluster, cfg.nodeName, "server", "etcd-member", result.member);
    return result;
  }

  /** Wait for the server URL to answer (k3s retries); servers give up after K3S_SIM_CONNECT_RETRY_SECONDS. */
  async waitForServer(forever) {
    const url = this.cfg.serverUrl;
    const deadline = Date.now() + this.S.connectRetrySeconds * 1000;
    let announced = false;
    for (;;) {
      const r = C.serverAt(this.cluster, url);
      if (r.server) return r.server;
      const msg = `failed to get CA certs: ${r.error}`;
      if (!forever && Date.now() > deadline) return this.fatal(`Error: preparing server: failed to validate connection to cluster at ${url}: ${msg}`);
      log.error(forever ? `Failed to validate connection to cluster at ${url}: ${msg}` : msg);
      if (!announced) {
        setState(this.role, "error", `${msg} (retrying)`);
        announced = true;
      }
      await U.sleep(1000);
    }
  }

  checkCaHash(parsed, boot) {
    if (parsed.caHash && parsed.caHash !== boot.caHash) {
      this.fatal(`Error: failed to validate token: token CA hash does not match the Cluster CA certificate hash: ${parsed.caHash} != ${boot.caHash}`);
    }
  }

  async joinServer(parsed) {
    const cfg = this.cfg;
    if (!parsed) return this.fatal("Error: --token is required when joining a server to a cluster (set token or token-file)");
    const srv = await this.waitForServer(false);
    const host = new URL(cfg.serverUrl).hostname;
    const boot = C.readBootstrap(this.cluster);
    if (!boot) return this.fatal(`failed to get CA certs: ${cfg.serverUrl}/cacerts: 503 Service Unavailable`);
    if (!parsed.caHash) log.warn("Cluster CA certificate is not trusted by the host CA bundle, but the token does not include a CA hash. Use the full token from the server's node-token file to enable Cluster CA validation.");
    this.checkCaHash(parsed, boot);
    const marker = this.localMarker();
    const data = C.decrypt(parsed.password, boot);
    if (!data) {
      if (marker && marker.clusterId === boot.clusterId) return this.fatal("starting kubernetes: preparing server: failed to reconcile with local datastore: bootstrap data already found and encrypted with different token");
      return this.fatal(`starting kubernetes: preparing server: failed to get bootstrap data: https://${host}:6443/v1-k3s/server-bootstrap: 401 Unauthorized`);
    }
    if (boot.datastore !== "etcd") {
      return this.fatal(`starting kubernetes: preparing server: ${srv.name} does not run embedded etcd (it was started without cluster-init): another server cannot join it`);
    }
    log.info("Managed etcd cluster not yet initialized");
    const mismatched = Object.keys(boot.critical).filter((k) => JSON.stringify(boot.critical[k]) !== JSON.stringify(cfg.critical[k]));
    if (mismatched.length) {
      for (const k of mismatched) log.error(`Critical configuration mismatched: ${k}`);
      return this.fatal("starting kubernetes: preparing server: failed to bootstrap cluster data: failed to validate server configuration: critical configuration value mismatch between servers");
    }
    this.startHeartbeat();
    let member;
    let learner = false;
    let err;
    U.withLock(this.cluster, () => {
      const e = C.readEtcd(this.cluster);
      if (marker && marker.clusterId === boot.clusterId) {
        const m = e.members.find((x) => x.name === marker.member);
        if (!m) return void (err = "starting kubernetes: preparing server: start managed database: etcdserver: the member has been permanently removed from the cluster");
        member = m.name;
        learner = m.isLearner;
        return;
      }
      const q = C.quorum(this.cluster);
      if (!q.ok) return void (err = `ETCD join failed: etcdserver: unhealthy cluster (${q.up} of ${q.voting} voting members up)`);
      if (e.members.some((m) => m.isLearner)) return void (err = "ETCD join failed: etcdserver: too many learner members in cluster");
      member = `${cfg.nodeName}-${U.randomHex(4)}`;
      e.members.push({ name: member, node: cfg.nodeName, peerURL: `https://${cfg.nodeIp}:2380`, isLearner: true, addedAt: new Date().toISOString(), datastore: "etcd" });
      C.writeEtcd(this.cluster, e);
      this.writeMarker(boot, member);
      learner = true;
    });
    if (err) return this.fatal(err);
    this.st.member = member;
    if (learner) {
      log.info(`Adding member ${member}=https://${cfg.nodeIp}:2380 to etcd cluster as a learner`);
      U.joinLog(this.cluster, cfg.nodeName, "server", "etcd-learner", member);
      setState(this.role, "starting", "etcd learner catching up");
      await U.sleep(this.S.joinSeconds * 1000);
      U.withLock(this.cluster, () => {
        const e = C.readEtcd(this.cluster);
        const m = e.members.find((x) => x.name === member);
        if (!m) return void (err = "ETCD join failed: etcdserver: the member has been permanently removed from the cluster");
        m.isLearner = false;
        m.promotedAt = new Date().toISOString();
        C.writeEtcd(this.cluster, e);
      });
      if (err) return this.fatal(err);
      log.info(`Promoted learner ${member} to voting member`);
    }
    U.joinLog(this.cluster, cfg.nodeName, "server", "etcd-member", member);
    this.st.apiserver = true;
    this.beat();
    return { boot, data, member, password: parsed.password };
  }

  async connectAgent(parsed) {
    const cfg = this.cfg;
    if (!cfg.serverUrl) return this.fatal("Error: --server is required");
    if (!parsed) return this.fatal("Error: --token is required");
    await this.waitForServer(true);
    const boot = C.readBootstrap(this.cluster);
    if (!boot) return this.fatal(`failed to get CA certs: ${cfg.serverUrl}/cacerts: 503 Service Unavailable`);
    this.checkCaHash(parsed, boot);
    const data = C.decrypt(parsed.password, boot);
    if (!data) return this.fatal(`Error: token is not valid: ${new URL(cfg.serverUrl).origin}/apis: 401 Unauthorized`);
    this.startHeartbeat();
    return { boot, data, password: parsed.password };
  }

  writeServerFiles(r) {
    const cfg = this.cfg;
    const tokenFile = U.nodePath("/var/lib/rancher/k3s/server/token");
    U.writeAtomic(tokenFile, `K10${r.boot.caHash}::server:${r.password}\n`, 0o600);
    const legacy = U.nodePath("/var/lib/rancher/k3s/server/node-token");
    fs.rmSync(legacy, { force: true });
    fs.symlinkSync("/var/lib/rancher/k3s/server/token", legacy);
    U.writeAtomic(U.nodePath("/var/lib/rancher/k3s/server/tls/server-ca.crt"), r.boot.serverCaCrt, 0o644);
    U.writeAtomic(U.nodePath("/var/lib/rancher/k3s/server/tls/client-ca.crt"), r.boot.clientCaCrt, 0o644);
    let mode;
    try {
      mode = octalMode(cfg.values["write-kubeconfig-mode"], 0o600);
    } catch (e) {
      return this.fatal(e.message);
    }
    const kc = cfg.values["write-kubeconfig"] ? path.resolve("/", String(cfg.values["write-kubeconfig"])) : "/etc/rancher/k3s/k3s.yaml";
    U.writeAtomic(U.nodePath(kc), kubeconfigText("https://127.0.0.1:6443", { data: r.boot.serverCaCrt }, { certData: r.data.adminCrt, keyData: r.data.adminKey }), mode);
    log.info(`Wrote kubeconfig ${kc}`);
    return undefined;
  }

  /** Register the Node (retrying while the node password is rejected), then report Ready. */
  async register(r) {
    const cfg = this.cfg;
    let labels;
    let taints;
    try {
      labels = Object.fromEntries(cfg.labels.map(parseLabel));
      taints = cfg.taints.map(parseTaint);
    } catch (e) {
      return this.fatal(`failed to validate kubelet flags: ${e.message}`);
    }
    const pwFile = U.nodePath("/etc/rancher/node/password");
    let pw;
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
    // kubelet client certificate, signed by the cluster's client CA
    const agentDir = U.nodePath("/var/lib/rancher/k3s/agent");
    const kubelet = C.signClient(r.data, `system:node:${cfg.nodeName}`, "system:nodes");
    U.writeAtomic(path.join(agentDir, "client-kubelet.crt"), kubelet.crt, 0o644);
    U.writeAtomic(path.join(agentDir, "client-kubelet.key"), kubelet.key, 0o600);
    U.writeAtomic(path.join(agentDir, "server-ca.crt"), r.boot.serverCaCrt, 0o644);
    const lb = this.role === "server" ? "https://127.0.0.1:6443" : "https://127.0.0.1:6444";
    U.writeAtomic(
      path.join(agentDir, "kubelet.kubeconfig"),
      kubeconfigText(lb, { file: "/var/lib/rancher/k3s/agent/server-ca.crt" }, { certFile: "/var/lib/rancher/k3s/agent/client-kubelet.crt", keyFile: "/var/lib/rancher/k3s/agent/client-kubelet.key" }),
      0o600,
    );
    const secretName = C.nodePasswordSecretName(cfg.nodeName);
    let announced = false;
    for (;;) {
      let rejected = false;
      let node;
      U.withLock(this.cluster, () => {
        const sec = C.readSecret(this.cluster, "kube-system", secretName);
        if (sec) {
          const hash = Buffer.from((sec.data && sec.data.hash) || "", "base64").toString("utf8");
          if (!C.verifyPassword(pw, hash)) return void (rejected = true);
        } else {
          U.writeJson(C.secretFile(this.cluster, "kube-system", secretName), {
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: secretName, namespace: "kube-system", uid: crypto.randomUUID(), creationTimestamp: ts() },
            immutable: true,
            type: "k3s.cattle.io/node-password",
            data: { hash: b64(C.hashPassword(pw)) },
          });
        }
        node = this.upsertNode(r, labels, taints, U.sha256hex(kubelet.key));
      });
      if (!rejected) {
        this.st.uid = node.uid;
        break;
      }
      const msg = `Waiting to retrieve agent configuration; server is not ready: ${NODE_PASSWORD_REJECTED}`;
      log.info(msg);
      if (!announced) {
        setState(this.role, "error", NODE_PASSWORD_REJECTED);
        U.joinLog(this.cluster, cfg.nodeName, this.role, "rejected", "node password");
        announced = true;
      }
      await U.sleep(1000);
    }
    U.joinLog(this.cluster, cfg.nodeName, this.role, "registered");
    this.st.readySince = Date.now();
    this.beat();
    U.joinLog(this.cluster, cfg.nodeName, this.role, "ready");
    setState(this.role, "ready");
    log.info(this.role === "server" ? "k3s is up and running" : `Node ${cfg.nodeName} is ready`);
  }

  upsertNode(r, labels, taints, kubeletKeyHash) {
    const cfg = this.cfg;
    const now = ts();
    let n = C.readNode(this.cluster, cfg.nodeName);
    const annotations = {
      "alpha.kubernetes.io/provided-node-ip": cfg.nodeIp,
      "flannel.alpha.coreos.com/public-ip": cfg.nodeIp,
      "k3s.io/hostname": cfg.nodeName,
      "k3s.io/internal-ip": cfg.nodeIp,
      "k3s.io/node-args": JSON.stringify(Config.nodeArgs(this.role, cfg)),
      "k3s.io/node-config-hash": U.sha256hex(JSON.stringify(cfg.values)).slice(0, 52).toUpperCase(),
      "node.alpha.kubernetes.io/ttl": "0",
      "volumes.kubernetes.io/controller-managed-attach-detach": "true",
      ...(this.role === "server" && r.member ? { "etcd.k3s.cattle.io/node-name": r.member, "etcd.k3s.cattle.io/node-address": cfg.nodeIp } : {}),
    };
    if (n) {
      // existing Node: kubelet updates addresses and annotations; labels/taints from config are NOT re-applied
      n.nodeIp = cfg.nodeIp;
      n.annotations = { ...n.annotations, ...annotations };
      n.version = this.S.version;
      n.kubeletKeyHash = kubeletKeyHash;
      n.role = this.role;
    } else {
      const used = new Set(C.listNodes(this.cluster).map((x) => x.podCIDR));
      let idx = 0;
      while (used.has(`10.42.${idx}.0/24`)) idx++;
      const arch = archLabel();
      const base = {
        "beta.kubernetes.io/arch": arch,
        "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": cfg.nodeName,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
      };
      if (this.role === "server") {
        base["node-role.kubernetes.io/control-plane"] = "true";
        base["node-role.kubernetes.io/master"] = "true";
        if (r.boot.datastore === "etcd") base["node-role.kubernetes.io/etcd"] = "true";
      }
      n = {
        name: cfg.nodeName,
        uid: crypto.randomUUID(),
        creationTimestamp: now,
        role: this.role,
        labels: { ...base, ...labels },
        annotations,
        taints,
        unschedulable: false,
        nodeIp: cfg.nodeIp,
        podCIDR: `10.42.${idx}.0/24`,
        version: this.S.version,
        arch,
        kubeletKeyHash,
      };
    }
    C.writeNode(this.cluster, n);
    return n;
  }
}

async function runDaemon(role, args) {
  const d = new Daemon(role, args);
  try {
    await d.run();
  } catch (e) {
    // an unexpected error must not leave a half-started process heartbeating
    d.fatal(`k3s-sim internal error: ${e && e.message ? e.message : String(e)}`);
  }
  // stay up: the heartbeat interval keeps the event loop alive
}

module.exports = { runDaemon, NODE_PASSWORD_REJECTED, stateFile, runtimeFile, unitOf, kubeconfigText };
