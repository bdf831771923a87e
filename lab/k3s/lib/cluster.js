"use strict";
/**
 * The simulated cluster datastore: a directory shared by every node of one lab (K3S_SIM_CLUSTER).
 *
 *   bootstrap.json          cluster id, server CA (PEM, its sha256 = the K10 token's CA hash), critical
 *                           server flags, and the bootstrap data (CA keys, admin client cert/key) encrypted
 *                           with a key derived from the token password (AES-256-GCM, PBKDF2): as in k3s,
 *                           the token both authenticates joiners and encrypts the bootstrap data.
 *   etcd.json               etcd members {name, node, peerURL, isLearner}
 *   nodes/<name>.json       Node records (labels, taints, unschedulable, addresses, uid)
 *   secrets/<ns>/<name>.json  Secrets (kube-system/<node>.node-password.k3s: scrypt hash of the node password)
 *   status/<name>.json      heartbeats of the node's k3s process (pid, pid namespace, time, phase)
 *   join.log, argv.log      observability (see util.js)
 *   faults.json             injected failures written by tests ({"drain-hang": ["node"|"*"]})
 *
 * Guarantees: no plaintext token is ever written here; mutations go through util.withLock; the Node
 * objects returned by nodeObject() are shaped like the API server's (kind Node, metadata, spec, status).
 */
const fs = require("fs");
const os = require("os");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");
const U = require("./util");

function P(cluster) {
  return {
    bootstrap: path.join(cluster, "bootstrap.json"),
    etcd: path.join(cluster, "etcd.json"),
    nodes: path.join(cluster, "nodes"),
    status: path.join(cluster, "status"),
    secrets: path.join(cluster, "secrets"),
    faults: path.join(cluster, "faults.json"),
  };
}

// ------------------------------------------------------------------ tokens and bootstrap data

const TOKEN_FORMAT_ERROR = "failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>";

/** Split a token: "K10<hash>::server:<password>" | "K10<hash>::<password>" | "<password>". */
function parseToken(token) {
  if (!token || /\s/.test(token)) throw new Error(TOKEN_FORMAT_ERROR);
  if (token.startsWith("K10")) {
    const m = /^K10([0-9a-f]{64})::(?:([^:]+):)?(.+)$/.exec(token);
    if (!m) throw new Error(TOKEN_FORMAT_ERROR);
    return { caHash: m[1], user: m[2] || "server", password: m[3] };
  }
  return { password: token };
}

function deriveKey(password, salt) {
  return crypto.pbkdf2Sync(password, Buffer.from(salt, "hex"), 20000, 32, "sha256");
}

function encrypt(password, salt, obj) {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", deriveKey(password, salt), iv);
  const data = Buffer.concat([c.update(JSON.stringify(obj), "utf8"), c.final()]);
  return { iv: iv.toString("hex"), tag: c.getAuthTag().toString("hex"), data: data.toString("base64") };
}

/** The decrypted bootstrap data, or undefined when the password is not the cluster's. */
function decrypt(password, boot) {
  try {
    const d = crypto.createDecipheriv("aes-256-gcm", deriveKey(password, boot.salt), Buffer.from(boot.encrypted.iv, "hex"));
    d.setAuthTag(Buffer.from(boot.encrypted.tag, "hex"));
    return JSON.parse(Buffer.concat([d.update(Buffer.from(boot.encrypted.data, "base64")), d.final()]).toString("utf8"));
  } catch {
    return undefined;
  }
}

function openssl(args, cwd) {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e.stderr ? e.stderr.toString().trim().split("\n").slice(-5).join(" / ") : e.message;
    throw new Error(`openssl ${args[0]} failed: ${err}`);
  }
}

/** Fresh PKI: server CA, client CA, admin client cert/key (all PEM). Keys never leave the temp dir but in the return value. */
function generatePki() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-sim-pki-"));
  fs.chmodSync(dir, 0o700);
  try {
    const ts = Math.floor(Date.now() / 1000);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(["req", "-x509", ...ec, "-keyout", "server-ca.key", "-out", "server-ca.crt", "-days", "3650", "-subj", `/CN=k3s-server-ca@${ts}`], dir);
    openssl(["req", "-x509", ...ec, "-keyout", "client-ca.key", "-out", "client-ca.crt", "-days", "3650", "-subj", `/CN=k3s-client-ca@${ts}`], dir);
    const r = (f) => fs.readFileSync(path.join(dir, f), "utf8");
    const pki = { serverCaCrt: r("server-ca.crt"), serverCaKey: r("server-ca.key"), clientCaCrt: r("client-ca.crt"), clientCaKey: r("client-ca.key") };
    const admin = signClient(pki, "system:admin", "system:masters", dir);
    return { ...pki, adminCrt: admin.crt, adminKey: admin.key };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A client certificate signed by the cluster's client CA. */
function signClient(pki, cn, org, workDir) {
  const dir = workDir || fs.mkdtempSync(path.join(os.tmpdir(), "k3s-sim-pki-"));
  fs.chmodSync(dir, 0o700);
  try {
    fs.writeFileSync(path.join(dir, "ca.crt"), pki.clientCaCrt, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "ca.key"), pki.clientCaKey, { mode: 0o600 });
    openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "c.key", "-out", "c.csr", "-subj", `/O=${org}/CN=${cn}`], dir);
    openssl(["x509", "-req", "-in", "c.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-out", "c.crt"], dir);
    return { crt: fs.readFileSync(path.join(dir, "c.crt"), "utf8"), key: fs.readFileSync(path.join(dir, "c.key"), "utf8") };
  } finally {
    if (workDir) for (const f of ["ca.crt", "ca.key", "c.key", "c.csr", "c.crt", "ca.srl"]) fs.rmSync(path.join(dir, f), { force: true });
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

function readBootstrap(cluster) {
  return U.readJson(P(cluster).bootstrap, undefined);
}

/** Create a new cluster (caller holds the lock). Returns the bootstrap record and decrypted data. */
function createCluster(cluster, { password, initNode, critical, datastore }) {
  const pki = generatePki();
  const salt = U.randomHex(16);
  const boot = {
    clusterId: crypto.randomUUID(),
    createdAt: new Date().toISOString(),
    initNode,
    datastore,
    serverCaCrt: pki.serverCaCrt,
    caHash: U.sha256hex(pki.serverCaCrt),
    clientCaCrt: pki.clientCaCrt,
    adminKeyHash: U.sha256hex(pki.adminKey),
    critical,
    salt,
    encrypted: encrypt(password, salt, pki),
  };
  U.writeJson(P(cluster).bootstrap, boot, 0o600);
  U.writeJson(P(cluster).etcd, { members: [] });
  return { boot, pki };
}

/** Move an old cluster's state aside (a new cluster-init after every server of the old one is gone). */
function archiveCluster(cluster) {
  const dest = path.join(cluster, "archive", new Date().toISOString().replace(/[:.]/g, "-"));
  fs.mkdirSync(dest, { recursive: true });
  for (const f of ["bootstrap.json", "etcd.json", "nodes", "status", "secrets"]) {
    const src = path.join(cluster, f);
    if (fs.existsSync(src)) fs.renameSync(src, path.join(dest, f));
  }
  return dest;
}

// ------------------------------------------------------------------ etcd

function readEtcd(cluster) {
  return U.readJson(P(cluster).etcd, { members: [] });
}

function writeEtcd(cluster, e) {
  U.writeJson(P(cluster).etcd, e);
}

// ------------------------------------------------------------------ nodes, secrets, status

function nodeFile(cluster, name) {
  return path.join(P(cluster).nodes, `${name}.json`);
}

function readNode(cluster, name) {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) return undefined;
  return U.readJson(nodeFile(cluster, name), undefined);
}

function writeNode(cluster, n) {
  n.resourceVersion = String(Date.now()) + String(Math.floor(Math.random() * 1000)).padStart(3, "0");
  U.writeJson(nodeFile(cluster, n.name), n);
}

function listNodes(cluster) {
  let files = [];
  try {
    files = fs.readdirSync(P(cluster).nodes).filter((f) => f.endsWith(".json"));
  } catch {
    files = [];
  }
  return files
    .map((f) => U.readJson(path.join(P(cluster).nodes, f), undefined))
    .filter(Boolean)
    .sort((a, b) => a.name.localeCompare(b.name));
}

function secretFile(cluster, ns, name) {
  return path.join(P(cluster).secrets, ns, `${name}.json`);
}

function readSecret(cluster, ns, name) {
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || !/^[a-z0-9-]+$/.test(ns)) return undefined;
  return U.readJson(secretFile(cluster, ns, name), undefined);
}

function listSecrets(cluster, ns) {
  try {
    return fs
      .readdirSync(path.join(P(cluster).secrets, ns))
      .filter((f) => f.endsWith(".json"))
      .map((f) => U.readJson(path.join(P(cluster).secrets, ns, f), undefined))
      .filter(Boolean);
  } catch {
    return [];
  }
}

function nodePasswordSecretName(node) {
  return `${node}.node-password.k3s`;
}

function hashPassword(pw) {
  const salt = crypto.randomBytes(8).toString("hex");
  const key = crypto.scryptSync(pw, salt, 32, { N: 1 << 14, r: 8, p: 1 });
  return `$1:${salt}:14:8:1:${key.toString("hex")}`;
}

function verifyPassword(pw, hash) {
  const m = /^\$1:([0-9a-f]+):(\d+):(\d+):(\d+):([0-9a-f]+)$/.exec(hash || "");
  if (!m) return false;
  const key = crypto.scryptSync(pw, m[1], 32, { N: 1 << Number(m[2]), r: Number(m[3]), p: Number(m[4]) });
  return crypto.timingSafeEqual(key, Buffer.from(m[5], "hex"));
}

/** Remove the Node, its node-password secret and (servers) its etcd members. Caller holds the lock. */
function deleteNodeObjects(cluster, name) {
  fs.rmSync(nodeFile(cluster, name), { force: true });
  fs.rmSync(secretFile(cluster, "kube-system", nodePasswordSecretName(name)), { force: true });
  const e = readEtcd(cluster);
  const keep = e.members.filter((m) => m.node !== name);
  if (keep.length !== e.members.length) writeEtcd(cluster, { ...e, members: keep });
}

function statusFile(cluster, name) {
  return path.join(P(cluster).status, `${name}.json`);
}

function readStatus(cluster, name) {
  return U.readJson(statusFile(cluster, name), undefined);
}

/** Is the k3s process that last wrote this status still there? Uses the pid where visible, else the heartbeat age. */
function statusLive(st) {
  if (!st) return false;
  const { graceSeconds } = U.settings();
  if (Date.now() - st.lastHeartbeat > graceSeconds * 1000) return false;
  return U.processAlive(st) !== false;
}

/** The server whose API answers at `url` (https://host:6443), or a dial error in k3s's words. */
function serverAt(cluster, url) {
  let u;
  try {
    u = new URL(url);
  } catch {
    return { error: `invalid server url ${JSON.stringify(url)}` };
  }
  if (u.protocol !== "https:") return { error: `server url ${url} must use https` };
  const host = u.hostname;
  const port = u.port || "443";
  const refused = { error: `Get "https://${host}:${port}/cacerts": dial tcp ${host}:${port}: connect: connection refused` };
  if (port !== "6443") return refused;
  let st;
  try {
    st = fs.readdirSync(P(cluster).status).filter((f) => f.endsWith(".json"));
  } catch {
    return refused;
  }
  for (const f of st) {
    const s = U.readJson(path.join(P(cluster).status, f), undefined);
    if (!s || s.role !== "server" || !s.apiserver) continue;
    if (s.ip === host || s.name === host || (s.tlsSan || []).includes(host)) {
      if (statusLive(s)) return { server: s };
    }
  }
  return refused;
}

/** etcd quorum: at least a majority of the voting members' servers are up. */
function quorum(cluster) {
  const voting = readEtcd(cluster).members.filter((m) => !m.isLearner);
  if (voting.length === 0) return { ok: false, voting: 0, up: 0 };
  const up = voting.filter((m) => {
    const s = readStatus(cluster, m.node);
    return s && s.apiserver && s.member === m.name && statusLive(s);
  }).length;
  return { ok: up >= Math.floor(voting.length / 2) + 1, voting: voting.length, up };
}

function readFaults(cluster) {
  return U.readJson(P(cluster).faults, {});
}

// ------------------------------------------------------------------ Node objects as the API shows them

function nodeReady(cluster, n) {
  const st = readStatus(cluster, n.name);
  if (!st || st.uid !== n.uid || !st.readySince) {
    return { ready: false, status: "Unknown", reason: "NodeStatusNeverUpdated", message: "Kubelet never posted node status.", st };
  }
  if (statusLive(st)) return { ready: true, status: "True", reason: "KubeletReady", message: "kubelet is posting ready status", st };
  return { ready: false, status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status.", st };
}

function nodeObject(cluster, n) {
  const r = nodeReady(cluster, n);
  const hb = r.st ? new Date(Math.min(r.st.lastHeartbeat, Date.now())).toISOString().replace(/\.\d+Z$/, "Z") : n.creationTimestamp;
  const since = r.st && r.st.readySince ? new Date(r.st.readySince).toISOString().replace(/\.\d+Z$/, "Z") : n.creationTimestamp;
  const cond = (type, status, reason, message) => ({ type, status, lastHeartbeatTime: hb, lastTransitionTime: since, reason, message });
  const conditions = r.ready
    ? [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        cond("Ready", "True", r.reason, r.message),
      ]
    : ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"].map((t) => cond(t, "Unknown", r.reason, r.message));
  if (r.ready && n.role === "server") conditions.unshift(cond("EtcdIsVoter", "True", "MemberNotLearner", "Node is a voting member of the etcd cluster"));
  const taints = [...(n.taints || []).map((t) => ({ ...t }))];
  if (n.unschedulable && !taints.some((t) => t.key === "node.kubernetes.io/unschedulable")) {
    taints.push({ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule", timeAdded: n.unschedulableSince || n.creationTimestamp });
  }
  if (!r.ready) {
    const key = r.st && r.st.readySince ? "node.kubernetes.io/unreachable" : "node.kubernetes.io/not-ready";
    taints.push({ key, effect: "NoSchedule", timeAdded: hb }, { key, effect: "NoExecute", timeAdded: hb });
  }
  const spec = { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR], providerID: `k3s://${n.name}` };
  if (taints.length) spec.taints = taints;
  if (n.unschedulable) spec.unschedulable = true;
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: n.name,
      uid: n.uid,
      resourceVersion: n.resourceVersion,
      creationTimestamp: n.creationTimestamp,
      labels: { ...n.labels },
      annotations: { ...n.annotations },
      ...(n.role === "server" ? { finalizers: ["wrangler.cattle.io/node", "wrangler.cattle.io/managed-etcd-controller"] } : { finalizers: ["wrangler.cattle.io/node"] }),
    },
    spec,
    status: {
      addresses: [
        { type: "InternalIP", address: n.nodeIp },
        { type: "Hostname", address: n.name },
      ],
      allocatable: { cpu: String(os.cpus().length), "ephemeral-storage": "28413148993", memory: "3908344Ki", pods: "110" },
      capacity: { cpu: String(os.cpus().length), "ephemeral-storage": "29207300Ki", memory: "3908344Ki", pods: "110" },
      conditions,
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        architecture: n.arch || "amd64",
        bootID: n.bootId || "",
        containerRuntimeVersion: "containerd://1.7.23-k3s2",
        kernelVersion: os.release(),
        kubeProxyVersion: n.version,
        kubeletVersion: n.version,
        machineID: n.machineId || "",
        operatingSystem: "linux",
        osImage: n.osImage || "Debian GNU/Linux",
        systemUUID: n.uid,
      },
    },
  };
}

module.exports = {
  P,
  parseToken,
  TOKEN_FORMAT_ERROR,
  decrypt,
  generatePki,
  signClient,
  readBootstrap,
  createCluster,
  archiveCluster,
  readEtcd,
  writeEtcd,
  readNode,
  writeNode,
  listNodes,
  readSecret,
  listSecrets,
  secretFile,
  nodePasswordSecretName,
  hashPassword,
  verifyPassword,
  deleteNodeObjects,
  statusFile,
  readStatus,
  statusLive,
  serverAt,
  quorum,
  readFaults,
  nodeReady,
  nodeObject,
};
