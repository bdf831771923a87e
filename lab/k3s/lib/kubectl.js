"use strict";
/**
 * `k3s kubectl` / `kubectl`: the real kubectl (built by scripts/k8s-components.sh), with k3s's default
 * kubeconfig: --kubeconfig, else $KUBECONFIG, else /etc/rancher/k3s/k3s.yaml when it exists (k3s's
 * kubectl wrapper, pkg/kubectl/main.go, does the same for root). No kubeconfig at all (an agent): kubectl's own
 * "localhost:8080 was refused".
 *
 * One lab adjustment: k3s.yaml names https://127.0.0.1:6443 (as k3s writes it); the lab's nodes share one
 * network namespace, where each apiserver listens on its node's address, so a kubeconfig that names
 * 127.0.0.1:6443 is pointed at https://<this node's node-ip>:6443 (--server). The serving certificate is
 * valid for both.
 */
const fs = require("fs");
const { spawn } = require("child_process");
const U = require("./util");
const C = require("./components");

function nodeIp() {
  const rt = U.readJson(U.nodePath("/run/k3s-sim/daemon.json"), undefined);
  if (rt && rt.nodeIp) return rt.nodeIp;
  for (const role of ["server", "agent"]) {
    try {
      return require("./config").load(role, []).nodeIp;
    } catch {
      // no config for this role
    }
  }
  return undefined;
}

function chooseKubeconfig(argv) {
  const i = argv.findIndex((a) => a === "--kubeconfig" || a.startsWith("--kubeconfig="));
  if (i >= 0) return { given: true, file: argv[i].includes("=") ? argv[i].split("=").slice(1).join("=") : argv[i + 1] };
  if (process.env.KUBECONFIG) return { given: true, file: process.env.KUBECONFIG.split(":")[0] };
  const k3s = U.nodePath("/etc/rancher/k3s/k3s.yaml");
  if (fs.existsSync(k3s)) return { given: false, file: k3s };
  return undefined;
}

/** Node-local paths in --kubeconfig / $KUBECONFIG, under K3S_SIM_ROOT (nodes as directories in tests). */
function localise(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--kubeconfig" && i + 1 < argv.length) out.push(a, U.nodePath(argv[++i]));
    else if (a.startsWith("--kubeconfig=")) out.push(`--kubeconfig=${U.nodePath(a.slice("--kubeconfig=".length))}`);
    else out.push(a);
  }
  return out;
}

function kubectl(argv) {
  const args = localise(argv);
  if (process.env.KUBECONFIG) process.env.KUBECONFIG = process.env.KUBECONFIG.split(":").map((f) => (f.startsWith("/") ? U.nodePath(f) : f)).join(":");
  const kc = chooseKubeconfig(args);
  if (kc && !kc.given) args.unshift(`--kubeconfig=${kc.file}`);
  if (kc && !args.some((a) => a === "--server" || a === "-s" || a.startsWith("--server="))) {
    let text = "";
    try {
      text = fs.readFileSync(kc.file, "utf8");
    } catch {
      text = "";
    }
    const ip = /server:\s*"?https:\/\/127\.0\.0\.1:6443/.test(text) ? nodeIp() : undefined;
    if (ip) args.unshift(`--server=https://${ip}:6443`);
  }
  return new Promise((resolve) => {
    let exe;
    try {
      exe = C.bin("kubectl");
    } catch (e) {
      process.stderr.write(`${e.message}\n`);
      return resolve(1);
    }
    const child = spawn(exe, args, { stdio: "inherit" });
    child.on("exit", (code, signal) => resolve(code === null ? (signal === "SIGKILL" ? 137 : 1) : code));
    child.on("error", (e) => {
      process.stderr.write(`${e.message}\n`);
      resolve(1);
    });
  });
}

module.exports = { kubectl };
