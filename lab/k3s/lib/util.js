"use strict";
/**
 * Shared plumbing of the k3s stand-in: simulation settings, node-local paths, the cluster directory's
 * lock and atomic writes, process liveness, the argv log.
 *
 * Contract:
 * - Every node-local path goes through nodePath(): K3S_SIM_ROOT (default "/") is prefixed, so several
 *   simulated nodes can live side by side as plain directories.
 * - The cluster directory (K3S_SIM_CLUSTER) is shared by all nodes; every read-modify-write of shared
 *   state runs under withLock() (O_EXCL lock file, retried, broken when older than 15 s), and every file
 *   is replaced by rename, so readers never see a torn file.
 * - logInvocation() appends one JSON line per process start to <cluster>/argv.log: argv and the NAMES of
 *   the environment variables (never their values), so tests can prove a secret never was an argument.
 */
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const os = require("os");

const K3S_VERSION_DEFAULT = "v1.34.4+k3s1";

function num(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`k3s-sim: ${name}=${JSON.stringify(v)} is not a non-negative number`);
  return n;
}

/** The simulation's knobs, from the environment (documented in lab/k3s/README.md). */
function settings() {
  const joinSeconds = num("K3S_SIM_JOIN_SECONDS", 1.5);
  return {
    root: process.env.K3S_SIM_ROOT || "/",
    cluster: process.env.K3S_SIM_CLUSTER || "",
    joinSeconds,
    agentSeconds: num("K3S_SIM_AGENT_SECONDS", 0.3),
    graceSeconds: num("K3S_SIM_GRACE_SECONDS", 20),
    leaseSeconds: num("K3S_SIM_LEASE_SECONDS", 8),
    etcdHeartbeatMs: num("K3S_SIM_ETCD_HEARTBEAT_MS", 300),
    etcdElectionMs: num("K3S_SIM_ETCD_ELECTION_MS", 3000),
    heartbeatMs: num("K3S_SIM_HEARTBEAT_MS", 500),
    startTimeoutSeconds: num("K3S_SIM_START_TIMEOUT_SECONDS", Math.max(180, joinSeconds + 15)),
    connectRetrySeconds: num("K3S_SIM_CONNECT_RETRY_SECONDS", 10),
    version: process.env.K3S_SIM_VERSION || K3S_VERSION_DEFAULT,
    removeBinary: process.env.K3S_SIM_UNINSTALL_REMOVE_BINARY === "1",
  };
}

/** Environment variables that configure the simulation (passed on to daemons and baked into scripts). */
function simEnv() {
  const out = {};
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith("K3S_SIM_") && v !== undefined) out[k] = v;
  return out;
}

function requireCluster() {
  const c = settings().cluster;
  if (!c) {
    throw new Error(
      "k3s-sim: K3S_SIM_CLUSTER is not set: it must name the directory shared by all nodes of the lab that stands in for the cluster datastore",
    );
  }
  fs.mkdirSync(c, { recursive: true });
  return c;
}

/** A node-local absolute path under K3S_SIM_ROOT. */
function nodePath(p) {
  const root = settings().root;
  if (!path.isAbsolute(p)) throw new Error(`k3s-sim: internal: node path ${p} is not absolute`);
  return root === "/" ? p : path.join(root, p);
}

/** The node-local path as the node sees it (strip K3S_SIM_ROOT), for messages. */
function shownPath(p) {
  const root = settings().root;
  if (root === "/" || !p.startsWith(root)) return p;
  return "/" + path.relative(root, p);
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Write a file atomically (temp file in the same directory, then rename). */
function writeAtomic(file, data, mode = 0o644) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

function readJson(file, dflt) {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    if (e.code === "ENOENT") return dflt;
    throw new Error(`k3s-sim: cannot read ${file}: ${e.message}`);
  }
}

function writeJson(file, obj, mode = 0o644) {
  writeAtomic(file, JSON.stringify(obj, null, 2) + "\n", mode);
}

/** Run fn() holding the cluster lock. Synchronous on purpose: the critical sections are short. */
function withLock(cluster, fn) {
  const lock = path.join(cluster, "lock");
  const deadline = Date.now() + 30000;
  let fd;
  for (;;) {
    try {
      fd = fs.openSync(lock, "wx", 0o644);
      fs.writeSync(fd, `${os.hostname()} ${process.pid} ${new Date().toISOString()}\n`);
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      try {
        const st = fs.statSync(lock);
        if (Date.now() - st.mtimeMs > 15000) {
          fs.rmSync(lock, { force: true }); // holder died (node powered off inside a critical section)
          continue;
        }
      } catch {
        continue;
      }
      if (Date.now() > deadline) throw new Error(`k3s-sim: cluster lock ${lock} held for more than 30 s`);
      sleepSync(5 + Math.floor(Math.random() * 20));
    }
  }
  try {
    return fn();
  } finally {
    fs.closeSync(fd);
    fs.rmSync(lock, { force: true });
  }
}

/** Start time of a process (clock ticks since boot, /proc/<pid>/stat field 22), undefined if gone. */
function procStart(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z") return undefined; // zombie: as good as dead
    return rest[19];
  } catch {
    return undefined;
  }
}

function pidNs() {
  try {
    return fs.readlinkSync("/proc/self/ns/pid");
  } catch {
    return "unknown";
  }
}

/** Is the process that wrote {pid, pidStart, pidns} still running? undefined = cannot tell from here. */
function processAlive(rec) {
  if (!rec || !rec.pid) return false;
  if (rec.pidns !== pidNs()) return undefined;
  const st = procStart(rec.pid);
  return st !== undefined && st === rec.pidStart;
}

function selfRecord() {
  return { pid: process.pid, pidStart: procStart(process.pid), pidns: pidNs(), host: os.hostname() };
}

/** Append this process's argv and environment variable names to <cluster>/argv.log (if a cluster is set). */
function logInvocation(prog, argv) {
  const cluster = process.env.K3S_SIM_CLUSTER;
  if (!cluster) return;
  try {
    fs.mkdirSync(cluster, { recursive: true });
    const rec = {
      ts: new Date().toISOString(),
      prog,
      argv,
      envKeys: Object.keys(process.env).sort(),
      root: settings().root,
      pid: process.pid,
      host: os.hostname(),
    };
    fs.appendFileSync(path.join(cluster, "argv.log"), JSON.stringify(rec) + "\n");
  } catch {
    // observability must never break the command itself
  }
}

/** Append an event to <cluster>/join.log (timestamps prove join order). */
function joinLog(cluster, node, role, event, detail) {
  const now = Date.now();
  const rec = { ts: new Date(now).toISOString(), tsMs: now, node, role, event };
  if (detail) rec.detail = detail;
  fs.appendFileSync(path.join(cluster, "join.log"), JSON.stringify(rec) + "\n");
}

function randomHex(bytes) {
  return crypto.randomBytes(bytes).toString("hex");
}

function sha256hex(data) {
  return crypto.createHash("sha256").update(data).digest("hex");
}

/** k8s-style age: 5s, 3m, 2d... */
function age(fromIso) {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(fromIso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

module.exports = {
  settings,
  simEnv,
  requireCluster,
  nodePath,
  shownPath,
  sleepSync,
  sleep,
  writeAtomic,
  readJson,
  writeJson,
  withLock,
  procStart,
  pidNs,
  processAlive,
  selfRecord,
  logInvocation,
  joinLog,
  randomHex,
  sha256hex,
  age,
};
