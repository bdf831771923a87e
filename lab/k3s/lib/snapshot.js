"use strict";
/**
 * `k3s etcd-snapshot save|ls` on a server: a real etcd snapshot of the local member (etcdctl snapshot
 * save) into /var/lib/rancher/k3s/server/db/snapshots (or --etcd-snapshot-dir), named
 * <name>-<node>-<unix time> with name "on-demand" by default, as k3s names them.
 */
const fs = require("fs");
const path = require("path");
const U = require("./util");
const C = require("./components");

const TLS = "/var/lib/rancher/k3s/server/tls/etcd";

function opts(args) {
  const o = { name: "on-demand", dir: "/var/lib/rancher/k3s/server/db/snapshots" };
  for (let i = 0; i < args.length; i++) {
    const [k, v] = args[i].includes("=") ? [args[i].split("=")[0], args[i].split("=").slice(1).join("=")] : [args[i], args[i + 1]];
    if (k === "--name" || k === "--etcd-snapshot-name") o.name = v;
    else if (k === "--dir" || k === "--etcd-snapshot-dir") o.dir = v;
    else continue;
    if (!args[i].includes("=")) i++;
  }
  return o;
}

async function snapshot(args, out = (s) => process.stdout.write(s), err = (s) => process.stderr.write(s)) {
  const sub = args[0] || "save";
  const o = opts(args.slice(1));
  const dir = U.nodePath(path.resolve("/", o.dir));
  if (sub === "ls" || sub === "list") {
    let files = [];
    try {
      files = fs.readdirSync(dir).filter((f) => !f.endsWith(".part"));
    } catch {
      files = [];
    }
    out("Name                                     Location                                                                 Size     Created\n");
    for (const f of files.sort()) {
      const st = fs.statSync(path.join(dir, f));
      out(`${f.padEnd(40)} file://${path.join(o.dir, f).padEnd(64)} ${String(st.size).padEnd(8)} ${st.mtime.toISOString().replace(/\.\d+Z$/, "Z")}\n`);
    }
    return 0;
  }
  if (sub !== "save") {
    err(`Incorrect Usage. No help topic for '${sub}'\n`);
    return 1;
  }
  const certs = ["server-ca.crt", "client.crt", "client.key"].map((f) => U.nodePath(`${TLS}/${f}`));
  if (!certs.every((f) => fs.existsSync(f))) {
    err(`time="${new Date().toISOString()}" level=fatal msg="etcd database not found in /var/lib/rancher/k3s/server/db/etcd"\n`);
    return 1;
  }
  const rt = U.readJson(U.nodePath("/run/k3s-sim/daemon.json"), undefined);
  const ip = (rt && rt.nodeIp) || require("./config").load("server", []).nodeIp;
  const node = (rt && rt.node) || require("./config").load("server", []).nodeName;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = `${o.name}-${node}-${Math.floor(Date.now() / 1000)}`;
  const file = path.join(dir, name);
  const r = await C.run(["etcdctl", `--endpoints=https://${ip}:2379`, `--cacert=${certs[0]}`, `--cert=${certs[1]}`, `--key=${certs[2]}`, "snapshot", "save", file], { env: { ETCDCTL_API: "3" }, timeoutMs: 120000 });
  if (r.code !== 0) {
    err(`time="${new Date().toISOString()}" level=fatal msg=${JSON.stringify(`failed to save snapshot: ${r.stderr.trim().split("\n").pop()}`)}\n`);
    return 1;
  }
  fs.chmodSync(file, 0o600);
  err(`time="${new Date().toISOString()}" level=info msg="Saving etcd snapshot to ${path.join(o.dir, name)}"\n`);
  err(`time="${new Date().toISOString()}" level=info msg="Snapshot ${name} saved."\n`);
  return 0;
}

module.exports = { snapshot };
