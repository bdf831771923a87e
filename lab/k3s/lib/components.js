"use strict";
/**
 * The real components a k3s process supervises: etcd (v3.6, as k3s embeds), kube-apiserver,
 * kube-controller-manager, kube-scheduler and kwok as the node agent (one per node,
 * --manage-single-node), all built by scripts/k8s-components.sh. Where they come from:
 *   K3S_SIM_K8S   directory with bin/ and stages/ (the lab bind-mounts the build cache at /opt/lab-k8s)
 * Each child runs under `setpriv --pdeathsig KILL`, so it ends with the k3s process that started it
 * (as k3s's embedded components do), logs to <log dir>/<name>.log, and its pid is recorded in
 * /run/k3s-sim/children (k3s-killall.sh ends them).
 */
const fs = require("fs");
const path = require("path");
const { spawn, execFile } = require("child_process");
const U = require("./util");

function k8sDir() {
  return process.env.K3S_SIM_K8S || "/opt/lab-k8s";
}

function bin(name) {
  const p = path.join(k8sDir(), "bin", name);
  if (!fs.existsSync(p)) throw new Error(`k3s-sim: ${p} not found: build the Kubernetes components first (bash scripts/k8s-components.sh) and set K3S_SIM_K8S to its directory`);
  return p;
}

function childrenFile() {
  return U.nodePath("/run/k3s-sim/children");
}

const running = new Map(); // name -> ChildProcess

/**
 * Start a component. onExit(code, signal, lastLines) is called if it ends while we did not stop it.
 * Returns the ChildProcess.
 */
function start(name, argv, { logDir, env = {}, onExit } = {}) {
  const exe = bin(argv[0]);
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, `${name}.log`);
  const fd = fs.openSync(logFile, "a");
  const child = spawn("setpriv", ["--pdeathsig", "KILL", "--", exe, ...argv.slice(1)], {
    stdio: ["ignore", fd, fd],
    env: { PATH: process.env.PATH || "/usr/bin:/bin", HOME: process.env.HOME || "/root", ...env },
  });
  fs.closeSync(fd);
  running.set(name, child);
  fs.mkdirSync(path.dirname(childrenFile()), { recursive: true });
  fs.appendFileSync(childrenFile(), `${child.pid} ${name}\n`);
  child.on("exit", (code, signal) => {
    if (running.get(name) !== child) return;
    running.delete(name);
    if (onExit) onExit(code, signal, tail(logFile, 60));
  });
  return child;
}

function tail(file, n) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

/** Stop every component this process started (reverse order), waiting up to `ms` for each. */
async function stopAll(ms = 5000) {
  const list = [...running.entries()].reverse();
  running.clear();
  for (const [, c] of list) {
    try {
      c.kill("SIGTERM");
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + ms;
  for (const [, c] of list) {
    while (c.exitCode === null && c.signalCode === null && Date.now() < deadline) await U.sleep(50);
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill("SIGKILL");
      } catch {
        // gone
      }
    }
  }
  fs.rmSync(childrenFile(), { force: true });
}

/** Kill components recorded in /run/k3s-sim/children whose process still runs (k3s-killall.sh). */
function killRecorded() {
  let text = "";
  try {
    text = fs.readFileSync(childrenFile(), "utf8");
  } catch {
    return 0;
  }
  let n = 0;
  for (const line of text.split("\n")) {
    const pid = Number(line.split(" ")[0]);
    if (!pid) continue;
    try {
      process.kill(pid, "SIGKILL");
      n++;
    } catch {
      // gone
    }
  }
  fs.rmSync(childrenFile(), { force: true });
  return n;
}

/** Run a short command (etcdctl), resolving {code, stdout, stderr}. */
function run(argv, { env = {}, timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    execFile(bin(argv[0]), argv.slice(1), { env: { PATH: process.env.PATH || "/usr/bin:/bin", ...env }, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

module.exports = { k8sDir, bin, start, stopAll, killRecorded, run, tail, running };
