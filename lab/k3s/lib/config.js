"use strict";
/**
 * k3s configuration as k3s reads it at start (docs.k3s.io "Configuration File"):
 *   /etc/rancher/k3s/config.yaml (or --config / K3S_CONFIG_FILE), then <config>.d/*.yaml in lexical
 *   order; a later file replaces a key, a key written `key+:` appends to it; command-line flags win over
 *   files, K3S_* environment variables are the defaults below both.
 *
 * Contract:
 * - load(role, args) returns { values, sources, warnings, nodeName, nodeIp, serverUrl, token, critical }.
 * - Unknown keys are skipped with k3s's warning ("Unknown flag --x found in config.yaml, skipping"),
 *   server-only keys in an agent's config too.
 * - Invalid YAML or a non-map file throws an Error naming the file (k3s exits fatally then).
 * - The token is resolved from `token` / `token-file` / K3S_TOKEN / K3S_TOKEN_FILE and returned only to
 *   the caller: it is never logged and never part of an error message.
 */
const fs = require("fs");
const os = require("os");
const path = require("path");
const yaml = require("./yaml");
const { nodePath } = require("./util");

const COMMON = [
  "config", "debug", "v", "vmodule", "log", "alsologtostderr", "data-dir", "token", "token-file", "server", "node-name",
  "with-node-id", "node-label", "node-taint", "image-credential-provider-bin-dir", "image-credential-provider-config",
  "docker", "container-runtime-endpoint", "default-runtime", "disable-default-registry-endpoint", "snapshotter",
  "private-registry", "system-default-registry", "node-ip", "node-external-ip", "node-internal-dns", "node-external-dns",
  "resolv-conf", "flannel-iface", "flannel-conf", "flannel-cni-conf-dir", "kubelet-arg", "kube-proxy-arg",
  "protect-kernel-defaults", "rootless", "prefer-bundled-bin", "selinux", "lb-server-port", "airgap-extra-registry",
  "vpn-auth", "vpn-auth-file", "enable-pprof", "bind-address", "pause-image",
];
const AGENT_ONLY = ["disable-apiserver-lb"];
const SERVER_ONLY = [
  "https-listen-port", "supervisor-port", "apiserver-port", "apiserver-bind-address", "advertise-address", "advertise-port",
  "tls-san", "tls-san-security", "cluster-cidr", "service-cidr", "service-node-port-range", "cluster-dns", "cluster-domain",
  "flannel-backend", "flannel-ipv6-masq", "flannel-external-ip", "egress-selector-mode", "servicelb-namespace",
  "write-kubeconfig", "write-kubeconfig-mode", "write-kubeconfig-group", "helm-job-image", "agent-token", "agent-token-file",
  "cluster-init", "cluster-reset", "cluster-reset-restore-path", "kube-apiserver-arg", "etcd-arg", "kube-controller-manager-arg",
  "kube-scheduler-arg", "kube-cloud-controller-manager-arg", "datastore-endpoint", "datastore-cafile", "datastore-certfile",
  "datastore-keyfile", "etcd-expose-metrics", "etcd-disable-snapshots", "etcd-snapshot-name", "etcd-snapshot-schedule-cron",
  "etcd-snapshot-retention", "etcd-snapshot-dir", "etcd-snapshot-compress", "etcd-s3", "default-local-storage-path",
  "disable", "disable-scheduler", "disable-cloud-controller", "disable-kube-proxy", "disable-network-policy",
  "disable-helm-controller", "disable-apiserver", "disable-controller-manager", "disable-etcd", "embedded-registry",
  "supervisor-metrics", "secrets-encryption", "secrets-encryption-provider", "disable-agent", "kine-tls", "etcd-s3-bucket",
  "etcd-s3-endpoint", "etcd-s3-region", "etcd-s3-folder",
];
const BOOLEAN = new Set([
  "debug", "alsologtostderr", "with-node-id", "docker", "disable-default-registry-endpoint", "protect-kernel-defaults",
  "rootless", "prefer-bundled-bin", "selinux", "enable-pprof", "disable-apiserver-lb", "tls-san-security", "flannel-ipv6-masq",
  "flannel-external-ip", "cluster-init", "cluster-reset", "etcd-expose-metrics", "etcd-disable-snapshots", "etcd-snapshot-compress",
  "etcd-s3", "disable-scheduler", "disable-cloud-controller", "disable-kube-proxy", "disable-network-policy", "disable-helm-controller",
  "disable-apiserver", "disable-controller-manager", "disable-etcd", "embedded-registry", "supervisor-metrics", "secrets-encryption",
  "disable-agent", "kine-tls",
]);
const SLICE = new Set([
  "node-label", "node-taint", "tls-san", "disable", "kubelet-arg", "kube-proxy-arg", "kube-apiserver-arg", "etcd-arg",
  "kube-controller-manager-arg", "kube-scheduler-arg", "kube-cloud-controller-manager-arg", "node-ip", "node-external-ip",
  "cluster-cidr", "service-cidr", "cluster-dns", "airgap-extra-registry", "node-internal-dns", "node-external-dns",
]);
const SHORT = { c: "config", t: "token", s: "server", v: "v" };

/** Critical flags (must be identical on every server) and their k3s defaults. */
const CRITICAL = {
  "cluster-cidr": "10.42.0.0/16",
  "service-cidr": "10.43.0.0/16",
  "cluster-dns": "10.43.0.10",
  "cluster-domain": "cluster.local",
  "flannel-backend": "vxlan",
  disable: [],
  "disable-network-policy": false,
  "disable-kube-proxy": false,
  "disable-helm-controller": false,
  "secrets-encryption": false,
  "egress-selector-mode": "agent",
};

function known(role) {
  return new Set([...COMMON, ...(role === "server" ? SERVER_ONLY : AGENT_ONLY)]);
}

/** Parse k3s command-line flags (after the subcommand) into a { key: value } map. */
function parseFlags(args, role) {
  const out = {};
  const ok = known(role);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const m = /^--?([A-Za-z0-9-]+)(?:=(.*))?$/s.exec(a);
    if (!m) throw new Error(`Incorrect Usage: unexpected argument ${JSON.stringify(a)}`);
    const key = a.startsWith("--") ? m[1] : SHORT[m[1]] || m[1];
    if (!ok.has(key)) throw new Error(`Incorrect Usage: flag provided but not defined: -${key}`);
    let val;
    if (BOOLEAN.has(key)) val = m[2] === undefined ? true : !/^(false|0)$/i.test(m[2]);
    else if (m[2] !== undefined) val = m[2];
    else {
      if (i + 1 >= args.length) throw new Error(`Incorrect Usage: flag needs an argument: -${key}`);
      val = args[++i];
    }
    if (SLICE.has(key)) out[key] = [...(out[key] || []), ...String(val).split(",").filter(Boolean)];
    else out[key] = val;
  }
  return out;
}

function readConfigFile(file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    if (e.code === "ENOENT") return undefined;
    throw new Error(`failed to read config file ${file}: ${e.message}`);
  }
  let doc;
  try {
    doc = yaml.parse(text, file);
  } catch (e) {
    throw new Error(`failed to parse config file ${file}: ${e.message}`);
  }
  if (doc === null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new Error(`failed to parse config file ${file}: the document is not a map of flag names`);
  return doc;
}

function asList(v) {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map(String);
  return [String(v)];
}

/** Merge one file into `values` following k3s's rules (later replaces, `key+` appends). */
function mergeInto(values, sources, doc, file, ok, warnings) {
  for (const [rawKey, v] of Object.entries(doc)) {
    const append = rawKey.endsWith("+");
    const key = append ? rawKey.slice(0, -1) : rawKey;
    if (!ok.has(key)) {
      warnings.push(`Unknown flag --${key} found in config.yaml, skipping`);
      continue;
    }
    if (append && values[key] !== undefined) {
      if (Array.isArray(values[key]) || SLICE.has(key)) values[key] = [...asList(values[key]), ...asList(v)];
      else values[key] = `${values[key]},${v}`;
    } else values[key] = SLICE.has(key) ? asList(v) : v;
    sources[key] = file;
  }
}

function firstIPv4() {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list || []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return "127.0.0.1";
}

function readHostname() {
  try {
    const h = fs.readFileSync(nodePath("/etc/hostname"), "utf8").split("\n")[0].trim();
    if (h) return h;
  } catch {
    // fall through
  }
  return os.hostname();
}

function truthy(v) {
  return v === true || (typeof v === "string" && /^(true|1|yes)$/i.test(v));
}

function normDisable(v) {
  return [...new Set(asList(v).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean))].sort();
}

/** The critical values of a server config, normalized for comparison. */
function criticalOf(values) {
  const out = {};
  for (const [k, d] of Object.entries(CRITICAL)) {
    const v = values[k];
    if (k === "disable") out[k] = normDisable(v);
    else if (typeof d === "boolean") out[k] = v === undefined ? d : truthy(v);
    else if (SLICE.has(k)) out[k] = v === undefined || asList(v).length === 0 ? d : asList(v).join(",");
    else out[k] = v === undefined ? d : String(v);
  }
  return out;
}

/**
 * Load the configuration of `k3s <role> args...`. Returns values and the derived settings; the token
 * (if any) is in `token` and must not be logged.
 */
function load(role, args) {
  const flags = parseFlags(args, role);
  const ok = known(role);
  const warnings = [];
  const values = {};
  const sources = {};
  // K3S_* environment variables: lowest precedence
  const env = process.env;
  if (env.K3S_URL) values.server = env.K3S_URL;
  if (env.K3S_NODE_NAME) values["node-name"] = env.K3S_NODE_NAME;
  if (env.K3S_TOKEN_FILE) values["token-file"] = env.K3S_TOKEN_FILE;
  if (env.K3S_KUBECONFIG_MODE && role === "server") values["write-kubeconfig-mode"] = env.K3S_KUBECONFIG_MODE;
  if (env.K3S_CLUSTER_INIT && role === "server") values["cluster-init"] = truthy(env.K3S_CLUSTER_INIT);
  const configFile = flags.config ? nodePath(path.resolve("/", flags.config)) : env.K3S_CONFIG_FILE ? nodePath(path.resolve("/", env.K3S_CONFIG_FILE)) : nodePath("/etc/rancher/k3s/config.yaml");
  const files = [];
  const main = readConfigFile(configFile);
  if (main !== undefined) files.push([configFile, main]);
  const dropDir = configFile + ".d";
  let drops = [];
  try {
    drops = fs.readdirSync(dropDir).filter((f) => /\.ya?ml$/.test(f)).sort();
  } catch {
    drops = [];
  }
  for (const f of drops) {
    const doc = readConfigFile(path.join(dropDir, f));
    if (doc !== undefined) files.push([path.join(dropDir, f), doc]);
  }
  for (const [f, doc] of files) mergeInto(values, sources, doc, f, ok, warnings);
  for (const [k, v] of Object.entries(flags)) {
    if (k === "config") continue;
    values[k] = v;
    sources[k] = "command line";
  }

  // token: flag/config `token` > `token-file` > K3S_TOKEN
  let token;
  let tokenSource;
  if (values.token !== undefined && values.token !== null && String(values.token) !== "") {
    token = String(values.token).trim();
    tokenSource = `the token key in ${sources.token}`;
  } else if (values["token-file"]) {
    const tf = nodePath(path.resolve("/", String(values["token-file"])));
    try {
      token = fs.readFileSync(tf, "utf8").trim();
    } catch (e) {
      throw new Error(`failed to read token file ${values["token-file"]}: ${e.code === "ENOENT" ? "no such file or directory" : e.message}`);
    }
    if (!token) throw new Error(`token file ${values["token-file"]} is empty`);
    tokenSource = `token file ${values["token-file"]}`;
  } else if (env.K3S_TOKEN) {
    token = env.K3S_TOKEN.trim();
    tokenSource = "K3S_TOKEN";
  }

  let nodeName = values["node-name"] ? String(values["node-name"]) : readHostname();
  nodeName = nodeName.toLowerCase();
  const nodeIp = asList(values["node-ip"])[0] || firstIPv4();
  const serverUrl = values.server ? String(values.server) : "";
  return {
    values,
    sources,
    warnings,
    configFile,
    files: files.map(([f]) => f),
    nodeName,
    nodeIp,
    serverUrl,
    token,
    tokenSource,
    clusterInit: truthy(values["cluster-init"]),
    critical: role === "server" ? criticalOf(values) : undefined,
    labels: asList(values["node-label"]),
    taints: asList(values["node-taint"]),
    tlsSan: asList(values["tls-san"]),
  };
}

/** The node's k3s.io/node-args annotation: flags as k3s records them, with the token masked. */
function nodeArgs(role, cfg) {
  const out = [role];
  for (const [k, v] of Object.entries(cfg.values)) {
    for (const item of Array.isArray(v) ? v : [v]) {
      out.push(`--${k}`);
      out.push(k === "token" || k === "agent-token" ? "********" : String(item));
    }
  }
  return out;
}

module.exports = { load, parseFlags, criticalOf, nodeArgs, asList, CRITICAL, BOOLEAN };
