"use strict";
/**
 * `k3s kubectl ...` / `kubectl ...` against the simulated cluster.
 *
 * Contract:
 * - Talks to "the API server" the way kubectl would: the kubeconfig is --kubeconfig, $KUBECONFIG,
 *   /etc/rancher/k3s/k3s.yaml (k3s kubectl's default, servers only) or ~/.kube/config; without one it
 *   fails with "The connection to the server localhost:8080 was refused". https://127.0.0.1:6443 needs
 *   this node's k3s server process, https://127.0.0.1:6444 (the agent load balancer in
 *   kubelet.kubeconfig) this node's k3s process, https://<ip>:6443 a running registered server. etcd
 *   must have quorum. The client key must be the cluster's admin key (k3s.yaml) or a node's kubelet key
 *   (read-only, like the Node authorizer); else "Unauthorized".
 * - Supported: get nodes|node|no [NAME...] [-o json|yaml|wide|name|jsonpath=...] [-l selector]
 *   [--show-labels], get secret(s) [-n NS|-A] [NAME], label, taint, cordon, uncordon, drain, delete node /
 *   secret. Messages and exit codes follow kubectl ("Error from server (NotFound): nodes \"x\" not found",
 *   exit 1). Unsupported commands or flags fail with kubectl's "unknown command" / "unknown flag".
 * - Every mutation runs under the cluster lock.
 */
const fs = require("fs");
const path = require("path");
const U = require("./util");
const C = require("./cluster");
const yaml = require("./yaml");

class KubectlError extends Error {
  constructor(msg, code = 1) {
    super(msg);
    this.code = code;
  }
}

const VALUE_FLAGS = { n: "namespace", namespace: "namespace", o: "output", output: "output", kubeconfig: "kubeconfig", timeout: "timeout", "grace-period": "grace-period", l: "selector", selector: "selector", "pod-selector": "pod-selector", context: "context", s: "server", server: "server", for: "for" };
const BOOL_FLAGS = {
  overwrite: "overwrite",
  "ignore-not-found": "ignore-not-found",
  "ignore-daemonsets": "ignore-daemonsets",
  "delete-emptydir-data": "delete-emptydir-data",
  "delete-local-data": "delete-emptydir-data",
  force: "force",
  A: "all-namespaces",
  "all-namespaces": "all-namespaces",
  "no-headers": "no-headers",
  "show-labels": "show-labels",
  wait: "wait",
  "disable-eviction": "disable-eviction",
};

function parseArgs(argv) {
  const pos = [];
  const f = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      pos.push(...argv.slice(i + 1));
      break;
    }
    const m = /^(--?)([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$/s.exec(a);
    if (!m || (a.startsWith("-") && /^-[0-9]/.test(a))) {
      pos.push(a);
      continue;
    }
    if (m[1] === "-" && m[2].length > 1 && !VALUE_FLAGS[m[2]] && !BOOL_FLAGS[m[2]]) throw new KubectlError(`error: unknown shorthand flag: '${m[2][0]}' in ${a}`);
    const name = m[2];
    if (VALUE_FLAGS[name]) {
      let v = m[3];
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new KubectlError(`error: flag needs an argument: ${a}`);
        v = argv[++i];
      }
      f[VALUE_FLAGS[name]] = v;
    } else if (BOOL_FLAGS[name]) {
      f[BOOL_FLAGS[name]] = m[3] === undefined ? true : !/^(false|0)$/i.test(m[3]);
    } else throw new KubectlError(`error: unknown flag: ${a.split("=")[0]}\nSee 'kubectl --help' for usage.`);
  }
  return { pos, f };
}

// ------------------------------------------------------------------ connecting

function refused(host) {
  return new KubectlError(`The connection to the server ${host} was refused - did you specify the right host or port?`);
}

function localDaemon() {
  const rt = U.readJson(U.nodePath("/run/k3s-sim/daemon.json"), undefined);
  if (!rt) return undefined;
  return U.processAlive(rt) === true ? rt : undefined;
}

/** Resolve the kubeconfig and credentials into { identity: "admin" | {node}, cluster }. */
function connect(f) {
  let file = f.kubeconfig || (process.env.KUBECONFIG || "").split(":").filter(Boolean)[0];
  let shown = file;
  if (file) file = U.nodePath(path.resolve(file));
  else {
    for (const cand of ["/etc/rancher/k3s/k3s.yaml", "/root/.kube/config"]) {
      if (fs.existsSync(U.nodePath(cand))) {
        file = U.nodePath(cand);
        shown = cand;
        break;
      }
    }
  }
  if (!file) throw refused("localhost:8080");
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if (f.kubeconfig) throw new KubectlError(`error: stat ${shown}: no such file or directory`);
    throw new KubectlError(`error: error loading config file "${shown}": open ${shown}: ${e.code === "EACCES" ? "permission denied" : "no such file or directory"}`);
  }
  let kc;
  try {
    kc = yaml.parse(text, shown);
  } catch (e) {
    throw new KubectlError(`error: error loading config file "${shown}": ${e.message}`);
  }
  const ctxName = f.context || (kc && kc["current-context"]);
  const ctx = ((kc && kc.contexts) || []).find((c) => c && c.name === ctxName);
  if (!ctx || !ctx.context) throw refused("localhost:8080");
  const clu = ((kc.clusters || []).find((c) => c && c.name === ctx.context.cluster) || {}).cluster;
  const usr = ((kc.users || []).find((u) => u && u.name === ctx.context.user) || {}).user || {};
  if (!clu || !clu.server) throw refused("localhost:8080");
  const url = new URL(String(clu.server));
  const hostPort = `${url.hostname}:${url.port || 443}`;
  const cluster = process.env.K3S_SIM_CLUSTER;
  if (!cluster) throw refused(hostPort);
  if (url.hostname === "127.0.0.1" || url.hostname === "localhost") {
    const rt = localDaemon();
    if (!rt) throw refused(hostPort);
    if (url.port === "6443") {
      const st = C.readStatus(cluster, rt.node);
      if (rt.role !== "server" || !st || !st.apiserver || st.pid !== rt.pid) throw refused(hostPort);
    } else if (url.port === "6444") {
      const q = C.quorum(cluster);
      if (q.up === 0) throw new KubectlError(`Unable to connect to the server: dial tcp ${hostPort}: connect: connection refused`);
    } else throw refused(hostPort);
  } else if (C.serverAt(cluster, url.href).error) throw refused(hostPort);
  const boot = C.readBootstrap(cluster);
  if (!boot) throw refused(hostPort);
  if (!C.quorum(cluster).ok) throw new KubectlError("Error from server: etcdserver: request timed out");
  let key;
  if (usr["client-key-data"]) key = Buffer.from(String(usr["client-key-data"]), "base64").toString("utf8");
  else if (usr["client-key"]) {
    try {
      key = fs.readFileSync(U.nodePath(path.resolve(String(usr["client-key"]))), "utf8");
    } catch {
      throw new KubectlError(`error: unable to read client-key ${usr["client-key"]} for default due to open ${usr["client-key"]}: no such file or directory`);
    }
  }
  if (key && U.sha256hex(key) === boot.adminKeyHash) return { identity: "admin", user: "system:admin", cluster };
  if (key) {
    const h = U.sha256hex(key);
    const n = C.listNodes(cluster).find((x) => x.kubeletKeyHash === h);
    if (n) return { identity: { node: n.name }, user: `system:node:${n.name}`, cluster };
  }
  throw new KubectlError("error: You must be logged in to the server (Unauthorized)");
}

function requireAdmin(api, verb, resource, name) {
  if (api.identity === "admin") return;
  const what = name ? `${resource} "${name}" is forbidden` : `${resource} is forbidden`;
  throw new KubectlError(`Error from server (Forbidden): ${what}: User "${api.user}" cannot ${verb} resource "${resource}" in API group "" at the cluster scope`);
}

// ------------------------------------------------------------------ output helpers

function table(rows, noHeaders) {
  const r = noHeaders ? rows.slice(1) : rows;
  if (!r.length) return "";
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => String(row[i]).length)));
  return r.map((row) => row.map((c, i) => (i === row.length - 1 ? String(c) : String(c).padEnd(w[i] + 3))).join("").replace(/\s+$/, "")).join("\n") + "\n";
}

function roles(n) {
  const r = Object.keys(n.metadata.labels || {})
    .filter((k) => k.startsWith("node-role.kubernetes.io/"))
    .map((k) => k.slice("node-role.kubernetes.io/".length))
    .sort();
  return r.length ? r.join(",") : "<none>";
}

function nodeStatusWord(n) {
  const ready = (n.status.conditions || []).find((c) => c.type === "Ready");
  let s = ready && ready.status === "True" ? "Ready" : "NotReady";
  if (n.spec.unschedulable) s += ",SchedulingDisabled";
  return s;
}

/** A small JSONPath as kubectl's -o jsonpath understands it (fields, [n], [*], [?(@.a=="b")], missing keys allowed). */
function jsonpath(template, data) {
  let out = "";
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    if (open < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, open);
    const close = template.indexOf("}", open);
    if (close < 0) throw new KubectlError(`error: error parsing jsonpath ${template}, unclosed action`);
    const expr = template.slice(open + 1, close).trim();
    i = close + 1;
    if (/^range\b|^end$/.test(expr)) throw new KubectlError("error: k3s-sim: jsonpath range/end is not supported");
    const lit = /^"((?:[^"\\]|\\.)*)"$/.exec(expr);
    if (lit) {
      out += lit[1].replace(/\\n/g, "\n").replace(/\\t/g, "\t").replace(/\\(.)/g, "$1");
      continue;
    }
    const vals = evalPath(expr, data);
    out += vals.map((v) => (v !== null && typeof v === "object" ? JSON.stringify(v) : String(v))).join(" ");
  }
  return out;
}

function evalPath(expr, data) {
  let e = expr.replace(/^\$/, "");
  let cur = [data];
  while (e.length) {
    let m;
    if ((m = /^\.((?:\\\.|[^.[\\])+)/.exec(e))) {
      const key = m[1].replace(/\\\./g, ".");
      cur = cur.flatMap((v) => (v && typeof v === "object" && !Array.isArray(v) && key in v ? [v[key]] : []));
    } else if ((m = /^\[\s*['"]([^'"]*)['"]\s*\]/.exec(e))) {
      const key = m[1];
      cur = cur.flatMap((v) => (v && typeof v === "object" && key in v ? [v[key]] : []));
    } else if ((m = /^\[\s*\*\s*\]/.exec(e))) {
      cur = cur.flatMap((v) => (Array.isArray(v) ? v : v && typeof v === "object" ? Object.values(v) : []));
    } else if ((m = /^\[\s*(-?\d+)\s*\]/.exec(e))) {
      const idx = Number(m[1]);
      cur = cur.flatMap((v) => (Array.isArray(v) && v.at(idx) !== undefined ? [v.at(idx)] : []));
    } else if ((m = /^\[\?\(\s*@((?:\.[A-Za-z0-9_-]+)+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_.-]+))\s*\)\]/.exec(e))) {
      const keys = m[1].slice(1).split(".");
      const want = m[3] ?? m[4] ?? m[5];
      cur = cur.flatMap((v) => (Array.isArray(v) ? v : [])).filter((item) => {
        let x = item;
        for (const k of keys) x = x && typeof x === "object" ? x[k] : undefined;
        return m[2] === "==" ? x !== undefined && String(x) === want : String(x) !== want;
      });
    } else if (e === ".") {
      break;
    } else throw new KubectlError(`error: error parsing jsonpath {${expr}}, unrecognized character in action: ${e[0]}`);
    e = e.slice(m[0].length);
  }
  return cur;
}

function matchesSelector(labels, selector) {
  if (!selector) return true;
  for (const term of selector.split(",").map((s) => s.trim()).filter(Boolean)) {
    let m;
    if ((m = /^([^!=]+)!=(.*)$/.exec(term))) {
      if (labels[m[1]] === m[2]) return false;
    } else if ((m = /^([^!=]+)==?(.*)$/.exec(term))) {
      if (labels[m[1]] !== m[2]) return false;
    } else if ((m = /^!(.+)$/.exec(term))) {
      if (m[1] in labels) return false;
    } else if (!(term in labels)) return false;
  }
  return true;
}

function print(objs, single, fmt, kind, tableFn, f) {
  const o = fmt || "";
  if (o === "json" || o === "yaml") {
    const doc = single ? objs[0] : { apiVersion: "v1", items: objs, kind: "List", metadata: { resourceVersion: "" } };
    return o === "json" ? JSON.stringify(doc, null, 4) + "\n" : yaml.stringify(doc);
  }
  if (o === "name") return objs.map((x) => `${kind}/${x.metadata.name}\n`).join("");
  if (o.startsWith("jsonpath=") || o.startsWith("jsonpath-as-json=")) {
    const t = o.slice(o.indexOf("=") + 1);
    const doc = single ? objs[0] : { apiVersion: "v1", items: objs, kind: "List", metadata: { resourceVersion: "" } };
    return jsonpath(t, doc);
  }
  if (o === "" || o === "wide") return table(tableFn(objs, o === "wide"), f["no-headers"]);
  throw new KubectlError(`error: unable to match a printer suitable for the output format "${o}", allowed formats are: json,jsonpath,jsonpath-as-json,name,wide,yaml`);
}

// ------------------------------------------------------------------ resources

const NODE_TYPES = ["node", "nodes", "no"];
const SECRET_TYPES = ["secret", "secrets"];

/** Split "TYPE NAME..." or "TYPE/NAME ..." into { type, names }. */
function target(pos, verb) {
  if (!pos.length) throw new KubectlError(`error: You must specify the type of resource to ${verb}.`);
  if (pos[0].includes("/")) {
    const names = [];
    let type;
    for (const p of pos) {
      const [t, n] = p.split("/");
      if (type && t !== type) throw new KubectlError("error: k3s-sim: mixed resource types are not supported");
      type = t;
      names.push(n);
    }
    return { type, names, rest: [] };
  }
  return { type: pos[0], names: pos.slice(1), rest: [] };
}

function kindOf(type) {
  if (NODE_TYPES.includes(type)) return "node";
  if (SECRET_TYPES.includes(type)) return "secret";
  throw new KubectlError(`error: the server doesn't have a resource type "${type}"`);
}

function nodesTable(objs, wide) {
  const head = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"];
  if (wide) head.push("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME");
  return [
    head,
    ...objs.map((n) => {
      const row = [n.metadata.name, nodeStatusWord(n), roles(n), U.age(n.metadata.creationTimestamp), n.status.nodeInfo.kubeletVersion];
      if (wide) {
        const ip = (n.status.addresses.find((a) => a.type === "InternalIP") || {}).address || "<none>";
        row.push(ip, "<none>", n.status.nodeInfo.osImage, n.status.nodeInfo.kernelVersion, n.status.nodeInfo.containerRuntimeVersion);
      }
      return row;
    }),
  ];
}

function getCmd(api, pos, f, out, err) {
  const { type, names } = target(pos, "get");
  const kind = kindOf(type);
  const cluster = api.cluster;
  let objs = [];
  let missing = [];
  if (kind === "node") {
    if (names.length) {
      for (const n of names) {
        const rec = C.readNode(cluster, n);
        if (rec) objs.push(C.nodeObject(cluster, rec));
        else missing.push(n);
      }
    } else objs = C.listNodes(cluster).map((n) => C.nodeObject(cluster, n));
    objs = objs.filter((o) => matchesSelector(o.metadata.labels, f.selector));
    const tableFn = (os, wide) => {
      const rows = nodesTable(os, wide);
      if (f["show-labels"]) {
        rows[0].push("LABELS");
        os.forEach((o, i) => rows[i + 1].push(Object.entries(o.metadata.labels).map(([k, v]) => `${k}=${v}`).join(",")));
      }
      return rows;
    };
    if (objs.length) out(print(objs, names.length === 1 && objs.length === 1, f.output, "node", tableFn, f));
    else if (!names.length && !f.output) err("No resources found\n");
    else if (!names.length && f.output) out(print([], false, f.output, "node", tableFn, f));
    for (const n of missing) err(`Error from server (NotFound): nodes "${n}" not found\n`);
    return missing.length ? 1 : 0;
  }
  requireAdmin(api, names.length ? "get" : "list", "secrets", names.length === 1 ? names[0] : undefined);
  const ns = f.namespace || "default";
  if (names.length) {
    for (const n of names) {
      const s = C.readSecret(cluster, ns, n);
      if (s) objs.push(s);
      else missing.push(n);
    }
  } else if (f["all-namespaces"]) {
    let nss = [];
    try {
      nss = fs.readdirSync(C.P(cluster).secrets);
    } catch {
      nss = [];
    }
    objs = nss.flatMap((x) => C.listSecrets(cluster, x));
  } else objs = C.listSecrets(cluster, ns);
  const tableFn = (os) => [
    [...(f["all-namespaces"] ? ["NAMESPACE"] : []), "NAME", "TYPE", "DATA", "AGE"],
    ...os.map((s) => [...(f["all-namespaces"] ? [s.metadata.namespace] : []), s.metadata.name, s.type, Object.keys(s.data || {}).length, U.age(s.metadata.creationTimestamp)]),
  ];
  if (objs.length) out(print(objs, names.length === 1 && objs.length === 1, f.output, "secret", tableFn, f));
  else if (!names.length) err(f["all-namespaces"] ? "No resources found\n" : `No resources found in ${ns} namespace.\n`);
  for (const n of missing) err(`Error from server (NotFound): secrets "${n}" not found\n`);
  return missing.length ? 1 : 0;
}

/** Lock, read the Node, apply fn (which may throw KubectlError), write it back. */
function mutateNode(api, name, fn) {
  let result;
  U.withLock(api.cluster, () => {
    const n = C.readNode(api.cluster, name);
    if (!n) throw new KubectlError(`Error from server (NotFound): nodes "${name}" not found`);
    result = fn(n);
    if (result.changed) C.writeNode(api.cluster, n);
  });
  return result;
}

function labelCmd(api, pos, f, out, err) {
  if (pos.length < 2) throw new KubectlError("error: one or more resources must be specified as <resource> <name> or <resource>/<name>");
  let type;
  let name;
  let rest;
  if (pos[0].includes("/")) {
    [type, name] = pos[0].split("/");
    rest = pos.slice(1);
  } else {
    [type, name] = pos;
    rest = pos.slice(2);
  }
  if (kindOf(type) !== "node") throw new KubectlError(`error: k3s-sim: label supports nodes only`);
  requireAdmin(api, "patch", "nodes", name);
  if (!rest.length) throw new KubectlError("error: at least one label update is required");
  const set = {};
  const remove = [];
  for (const r of rest) {
    if (r.endsWith("-") && !r.includes("=")) remove.push(r.slice(0, -1));
    else if (r.includes("=")) {
      const i = r.indexOf("=");
      const k = r.slice(0, i);
      const v = r.slice(i + 1);
      if (!/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(k)) throw new KubectlError(`error: invalid label spec: ${r}`);
      if (!/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/.test(v)) throw new KubectlError(`error: invalid label value: "${r}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
      set[k] = v;
    } else throw new KubectlError(`error: invalid label spec: ${r}`);
  }
  const res = mutateNode(api, name, (n) => {
    let changed = false;
    for (const [k, v] of Object.entries(set)) {
      if (k in n.labels && n.labels[k] !== v && !f.overwrite) throw new KubectlError(`error: '${k}' already has a value (${n.labels[k]}), and --overwrite is false`);
      if (n.labels[k] !== v) {
        n.labels[k] = v;
        changed = true;
      }
    }
    const notFound = [];
    for (const k of remove) {
      if (k in n.labels) {
        delete n.labels[k];
        changed = true;
      } else notFound.push(k);
    }
    return { changed, notFound };
  });
  for (const k of res.notFound) err(`label "${k}" not found.\n`);
  out(`node/${name} ${res.changed ? (remove.length && !Object.keys(set).length ? "unlabeled" : "labeled") : "not labeled"}\n`);
  return 0;
}

function taintCmd(api, pos, f, out) {
  let type;
  let name;
  let rest;
  if (pos[0] && pos[0].includes("/")) {
    [type, name] = pos[0].split("/");
    rest = pos.slice(1);
  } else {
    [type, name] = pos;
    rest = pos.slice(2);
  }
  if (!type || !name) throw new KubectlError("error: at least one taint update is required");
  if (kindOf(type) !== "node") throw new KubectlError("error: invalid resource type, only node types are supported");
  requireAdmin(api, "patch", "nodes", name);
  if (!rest.length) throw new KubectlError("error: at least one taint update is required");
  const add = [];
  const del = [];
  for (const r of rest) {
    const removal = r.endsWith("-");
    const spec = removal ? r.slice(0, -1) : r;
    const m = /^([^=:]+)(?:=([^:]*))?(?::(.*))?$/.exec(spec);
    if (!m) throw new KubectlError(`error: invalid taint spec: ${r}`);
    if (m[3] !== undefined && !["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(m[3])) throw new KubectlError(`error: invalid taint spec: ${r}, invalid taint effect: ${m[3]}, unsupported taint effect`);
    if (!removal && m[3] === undefined) throw new KubectlError(`error: invalid taint spec: ${r}, unknown taint spec: ${r}`);
    (removal ? del : add).push({ key: m[1], ...(m[2] ? { value: m[2] } : {}), effect: m[3] });
  }
  mutateNode(api, name, (n) => {
    const taints = n.taints || [];
    for (const d of del) {
      const before = taints.length;
      const keep = taints.filter((t) => !(t.key === d.key && (d.effect === undefined || t.effect === d.effect)));
      if (keep.length === before) throw new KubectlError(`error: taint "${d.effect ? `${d.key}:${d.effect}` : d.key}" not found`);
      taints.splice(0, taints.length, ...keep);
    }
    for (const a of add) {
      const i = taints.findIndex((t) => t.key === a.key && t.effect === a.effect);
      if (i >= 0) {
        if (!f.overwrite) throw new KubectlError(`error: node ${name} already has ${a.key} taint(s) with same effect(s) and --overwrite is false`);
        taints[i] = a;
      } else taints.push(a);
    }
    n.taints = taints;
    return { changed: true };
  });
  out(`node/${name} ${add.length ? "tainted" : "untainted"}\n`);
  return 0;
}

function cordon(api, name, on) {
  return mutateNode(api, name, (n) => {
    if (!!n.unschedulable === on) return { changed: false };
    n.unschedulable = on;
    if (on) n.unschedulableSince = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    else delete n.unschedulableSince;
    return { changed: true };
  });
}

function parseDuration(s) {
  if (s === undefined) return 0;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(s));
  if (!m) throw new KubectlError(`error: invalid argument "${s}" for "--timeout" flag: time: invalid duration "${s}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || "s"];
}

async function drainCmd(api, pos, f, out, err) {
  const { type, names } = pos[0] && pos[0].includes("/") ? target(pos, "drain") : { type: "node", names: pos };
  if (kindOf(type) !== "node" || !names.length) throw new KubectlError("error: USAGE: drain NODE [flags]");
  const timeoutMs = parseDuration(f.timeout);
  requireAdmin(api, "patch", "nodes", names[0]);
  for (const name of names) {
    const r = cordon(api, name, true);
    out(`node/${name} ${r.changed ? "cordoned" : "already cordoned"}\n`);
    const faults = C.readFaults(api.cluster);
    const hang = (faults["drain-hang"] || []).some((x) => x === "*" || x === name);
    if (hang) {
      const pod = `sim-pdb-blocked-${name}`;
      out(`evicting pod default/${pod}\n`);
      const start = Date.now();
      for (;;) {
        err(`error when evicting pods/"${pod}" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\n`);
        const left = timeoutMs ? timeoutMs - (Date.now() - start) : 5000;
        if (timeoutMs && left <= 0) break;
        await U.sleep(Math.min(5000, left));
        out(`evicting pod default/${pod}\n`);
      }
      const t = `${Math.round(timeoutMs / 1000)}s`;
      const e = `error when evicting pods/"${pod}" -n "default": global timeout reached: ${t}`;
      err(`There are pending pods in node "${name}" when an error occurred: ${e}\n`);
      err(`error: unable to drain node "${name}" due to error: ${e}, continuing command...\n`);
      err(`There are pending nodes to be drained:\n ${name}\n`);
      throw new KubectlError(`error: ${e}`);
    }
    out(`node/${name} drained\n`);
  }
  return 0;
}

function deleteCmd(api, pos, f, out, err) {
  const { type, names } = target(pos, "delete");
  const kind = kindOf(type);
  if (!names.length) throw new KubectlError(`error: resource(s) were provided, but no name was specified`);
  requireAdmin(api, "delete", kind === "node" ? "nodes" : "secrets", names[0]);
  let code = 0;
  for (const name of names) {
    let found = false;
    U.withLock(api.cluster, () => {
      if (kind === "node") {
        if (!C.readNode(api.cluster, name)) return;
        found = true;
        C.deleteNodeObjects(api.cluster, name);
      } else {
        const ns = f.namespace || "default";
        if (!C.readSecret(api.cluster, ns, name)) return;
        found = true;
        fs.rmSync(C.secretFile(api.cluster, ns, name), { force: true });
      }
    });
    if (found) out(`${kind} "${name}" deleted\n`);
    else if (!f["ignore-not-found"]) {
      err(`Error from server (NotFound): ${kind}s "${name}" not found\n`);
      code = 1;
    }
  }
  return code;
}

/** kubectl wait --for=condition=Ready[=True] node/NAME... [--timeout=30s] */
async function waitCmd(api, pos, f, out) {
  const m = /^condition=([A-Za-z]+)(?:=(True|False|Unknown))?$/.exec(f.for || "");
  if (!m) throw new KubectlError(`error: k3s-sim: only --for=condition=<Type>[=<Status>] is supported`);
  const { type, names } = target(pos, "wait");
  if (kindOf(type) !== "node" || !names.length) throw new KubectlError("error: k3s-sim: wait supports node/NAME only");
  const timeoutMs = f.timeout === undefined ? 30000 : parseDuration(f.timeout);
  const want = m[2] || "True";
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const rec = C.readNode(api.cluster, name);
      if (!rec) throw new KubectlError(`Error from server (NotFound): nodes "${name}" not found`);
      const cond = (C.nodeObject(api.cluster, rec).status.conditions || []).find((c) => c.type === m[1]);
      if (cond && cond.status === want) {
        out(`node/${name} condition met\n`);
        break;
      }
      if (Date.now() >= deadline) throw new KubectlError(`error: timed out waiting for the condition on nodes/${name}`);
      await U.sleep(Math.min(250, Math.max(1, deadline - Date.now())));
    }
  }
  return 0;
}

const COMMANDS = ["get", "label", "taint", "cordon", "uncordon", "drain", "delete", "wait"];

/** Run kubectl with argv; returns the exit code. out/err are writers. */
async function kubectl(argv, out = (s) => process.stdout.write(s), err = (s) => process.stderr.write(s)) {
  try {
    const { pos, f } = parseArgs(argv);
    const cmd = pos.shift();
    if (!cmd) {
      err("kubectl controls the Kubernetes cluster manager (k3s-sim stand-in).\n\nSupported: " + COMMANDS.join(", ") + "\n");
      return 0;
    }
    if (!COMMANDS.includes(cmd)) throw new KubectlError(`error: unknown command "${cmd}" for "kubectl"`);
    if (f.output !== undefined && !["get"].includes(cmd)) throw new KubectlError(`error: unknown flag: --output`);
    const api = connect(f);
    switch (cmd) {
      case "get":
        return getCmd(api, pos, f, out, err);
      case "label":
        return labelCmd(api, pos, f, out, err);
      case "taint":
        return taintCmd(api, pos, f, out, err);
      case "cordon":
      case "uncordon": {
        const { type, names } = pos[0] && pos[0].includes("/") ? target(pos, cmd) : { type: "node", names: pos };
        if (kindOf(type) !== "node" || !names.length) throw new KubectlError(`error: USAGE: ${cmd} NODE [flags]`);
        requireAdmin(api, "patch", "nodes", names[0]);
        for (const n of names) {
          const r = cordon(api, n, cmd === "cordon");
          out(`node/${n} ${r.changed ? `${cmd}ed` : `already ${cmd}ed`}\n`);
        }
        return 0;
      }
      case "drain":
        return await drainCmd(api, pos, f, out, err);
      case "delete":
        return deleteCmd(api, pos, f, out, err);
      case "wait":
        return await waitCmd(api, pos, f, out);
      default:
        return 1;
    }
  } catch (e) {
    if (e instanceof KubectlError) {
      err(e.message + "\n");
      return e.code;
    }
    throw e;
  }
}

module.exports = { kubectl, jsonpath, parseArgs };
