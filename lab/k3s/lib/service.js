"use strict";
/**
 * The service side of the stand-in: k3s's install.sh (airgap), the k3s / k3s-agent "systemd units"
 * (a `systemctl` stand-in, since the lab nodes run no systemd), k3s-killall.sh and the uninstall scripts.
 *
 * Contract:
 * - install(args): like `INSTALL_K3S_SKIP_DOWNLOAD=true sh install.sh [server|agent] [flags]`: role from
 *   INSTALL_K3S_EXEC / the first argument / K3S_URL (agent), writes kubectl symlink, k3s-killall.sh,
 *   k3s-uninstall.sh or k3s-agent-uninstall.sh, the unit file and its 0600 env file (K3S_* variables, as
 *   install.sh does), enables and (re)starts the unit. Returns non-zero with the reason and the log tail
 *   when the k3s process fails or reports an error during startup (servers: until Ready, as systemd's
 *   Type=notify start waits; agents: until registered or K3S_SIM_START_TIMEOUT_SECONDS, then it returns).
 * - systemctl(args): start|stop|restart|is-active|is-enabled|enable|disable|status|daemon-reload for
 *   k3s and k3s-agent; any other unit fails like systemctl on a host without systemd.
 * - The daemon runs detached (own session), logs to /var/log/k3s.log or /var/log/k3s-agent.log, pid in
 *   /run/k3s-sim/<unit>.pid. Nothing here ever receives the token in an argument.
 */
const fs = require("fs");
const path = require("path");
const { spawn } = require("child_process");
const U = require("./util");
const D = require("./daemon");

const UNITS = ["k3s", "k3s-agent"];
const ENTRY = path.resolve(__dirname, "..", "k3s");

function unitPath(unit) {
  return U.nodePath(`/etc/systemd/system/${unit}.service`);
}
function wantsPath(unit) {
  return U.nodePath(`/etc/systemd/system/multi-user.target.wants/${unit}.service`);
}
function envPath(unit) {
  return U.nodePath(`/etc/systemd/system/${unit}.service.env`);
}
function pidPath(unit) {
  return U.nodePath(`/run/k3s-sim/${unit}.pid`);
}
function logPath(unit) {
  return U.nodePath(`/var/log/${unit}.log`);
}
function roleOf(unit) {
  return unit === "k3s" ? "server" : "agent";
}

function shq(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

/** Read the unit file: ExecStart argv, Type, EnvironmentFile list. */
function readUnit(unit) {
  let text;
  try {
    text = fs.readFileSync(unitPath(unit), "utf8");
  } catch {
    return undefined;
  }
  const joined = text.replace(/\\\n/g, " ");
  const exec = /^ExecStart=(.*)$/m.exec(joined);
  const words = [];
  if (exec) {
    const re = /'((?:[^'])*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
    let m;
    while ((m = re.exec(exec[1]))) words.push(m[1] ?? (m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]));
  }
  const type = (/^Type=(\S+)$/m.exec(joined) || [])[1] || "simple";
  const envFiles = [...joined.matchAll(/^EnvironmentFile=-?(\S+)$/gm)].map((m) => m[1]).filter((f) => !f.includes("%"));
  return { exec: words, type, envFiles };
}

function readEnvFile(file) {
  const out = {};
  let text;
  try {
    text = fs.readFileSync(U.nodePath(file), "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2].trim();
    if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) v = v.slice(1, -1);
    out[m[1]] = v;
  }
  return out;
}

function unitPid(unit) {
  const rec = U.readJson(pidPath(unit), undefined);
  // only a process of this node's own PID namespace is ours to report on or signal
  return rec && U.processAlive(rec) === true ? rec : undefined;
}

function readState(unit) {
  return U.readJson(D.stateFile(roleOf(unit)), undefined);
}

function tail(file, n) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

function noSystemd(err) {
  err("System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n");
  return 1;
}

function notFound(unit, verb, err) {
  err(`Failed to ${verb} ${unit}.service: Unit ${unit}.service not found.\n`);
  return 5;
}

/** Start the unit's process. Returns an exit code; waits as the unit type dictates. */
async function startUnit(unit, out, err, opts = {}) {
  const u = readUnit(unit);
  if (!u) return notFound(unit, "start", err);
  if (unitPid(unit)) return 0;
  if (!u.exec.length) {
    err(`${unit}.service: Service has no ExecStart= setting. Refusing.\n`);
    return 1;
  }
  const exe = U.nodePath(u.exec[0]);
  if (!fs.existsSync(exe)) {
    err(`Job for ${unit}.service failed because the control process exited with error code.\n${unit}.service: Failed to locate executable ${u.exec[0]}: No such file or directory\n`);
    return 1;
  }
  const env = { PATH: process.env.PATH || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", ...U.simEnv() };
  for (const f of u.envFiles) Object.assign(env, readEnvFile(f));
  fs.mkdirSync(path.dirname(logPath(unit)), { recursive: true });
  fs.mkdirSync(path.dirname(pidPath(unit)), { recursive: true });
  fs.rmSync(D.stateFile(roleOf(unit)), { force: true });
  const fd = fs.openSync(logPath(unit), "a", 0o600);
  let child;
  try {
    child = spawn(exe, u.exec.slice(1), { detached: true, stdio: ["ignore", fd, fd], env, cwd: "/" });
  } finally {
    fs.closeSync(fd);
  }
  let exited = null;
  child.on("exit", (code, sig) => (exited = { code, sig }));
  child.on("error", (e) => (exited = { code: 127, sig: null, error: e.message }));
  child.unref();
  const pidStart = U.procStart(child.pid);
  U.writeJson(pidPath(unit), { pid: child.pid, pidStart, pidns: U.pidNs(), startedAt: Date.now() });
  if (opts.noBlock) return 0;
  const S = U.settings();
  const deadline = Date.now() + S.startTimeoutSeconds * 1000;
  const notify = u.type === "notify";
  for (;;) {
    await U.sleep(100);
    const st = readState(unit);
    const failed = (why) => {
      err(
        `Job for ${unit}.service failed because the control process exited with error code.\n` +
          `See "systemctl status ${unit}.service" and "journalctl -xeu ${unit}.service" for details.\n` +
          `k3s-sim: ${why}\n--- last lines of ${U.shownPath(logPath(unit))} ---\n${tail(logPath(unit), 15)}\n`,
      );
      return 1;
    };
    if (exited) return failed(`k3s ${roleOf(unit)} exited (${exited.error || (exited.sig ? `signal ${exited.sig}` : `status ${exited.code}`)}): ${st && st.message ? st.message : "see the log"}`);
    if (st && st.phase === "ready") return 0;
    if (st && st.phase === "failed") return failed(st.message);
    if (st && st.phase === "error") {
      err(`k3s-sim: ${unit}.service is running but its startup reported an error (k3s keeps retrying): ${st.message}\n--- last lines of ${U.shownPath(logPath(unit))} ---\n${tail(logPath(unit), 15)}\n`);
      return 1;
    }
    if (Date.now() > deadline) {
      if (!notify) return 0; // Type=exec: systemd does not wait for readiness
      err(`Job for ${unit}.service timed out (k3s-sim: not Ready within ${S.startTimeoutSeconds} s).\n--- last lines of ${U.shownPath(logPath(unit))} ---\n${tail(logPath(unit), 15)}\n`);
      return 1;
    }
  }
}

async function waitGone(rec, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (U.processAlive(rec) === false) return true;
    await U.sleep(50);
  }
  return U.processAlive(rec) === false;
}

async function stopUnit(unit) {
  const rec = unitPid(unit);
  if (rec) {
    try {
      process.kill(rec.pid, "SIGTERM");
    } catch {
      // gone
    }
    if (!(await waitGone(rec, 10000))) {
      try {
        process.kill(rec.pid, "SIGKILL");
      } catch {
        // gone
      }
      await waitGone(rec, 2000);
    }
  }
  fs.rmSync(pidPath(unit), { force: true });
  return 0;
}

function activeState(unit) {
  const rec = unitPid(unit);
  const st = readState(unit);
  // a k3s that reported a fatal error is failed, also while it is still stopping its components
  if (st && st.phase === "failed") return "failed";
  if (rec) {
    const u = readUnit(unit);
    if (u && u.type === "notify" && (!st || st.phase !== "ready")) return "activating";
    return "active";
  }
  if (st && st.phase === "failed") return "failed";
  return "inactive";
}

function enable(unit, err) {
  if (!fs.existsSync(unitPath(unit))) {
    err(`Failed to enable unit: Unit file ${unit}.service does not exist.\n`);
    return 1;
  }
  const w = wantsPath(unit);
  if (!isLink(w)) {
    fs.mkdirSync(path.dirname(w), { recursive: true });
    fs.rmSync(w, { force: true });
    fs.symlinkSync(`/etc/systemd/system/${unit}.service`, w);
    err(`Created symlink /etc/systemd/system/multi-user.target.wants/${unit}.service → /etc/systemd/system/${unit}.service.\n`);
  }
  return 0;
}

function disable(unit, err) {
  const w = wantsPath(unit);
  if (isLink(w) || fs.existsSync(w)) {
    fs.rmSync(w, { force: true });
    err(`Removed "/etc/systemd/system/multi-user.target.wants/${unit}.service".\n`);
  }
  return 0;
}

function isLink(p) {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** The systemctl stand-in. */
async function systemctl(argv, out = (s) => process.stdout.write(s), err = (s) => process.stderr.write(s)) {
  const flags = argv.filter((a) => a.startsWith("-"));
  const pos = argv.filter((a) => !a.startsWith("-"));
  const quiet = flags.includes("-q") || flags.includes("--quiet");
  const noBlock = flags.includes("--no-block");
  const now = flags.includes("--now");
  const verb = pos.shift();
  if (!verb) return noSystemd(err);
  if (verb === "daemon-reload") return 0;
  const units = pos.map((p) => p.replace(/\.service$/, ""));
  if (!units.length) {
    err(`Too few arguments.\n`);
    return 1;
  }
  if (units.some((x) => !UNITS.includes(x))) return noSystemd(err);
  let code = 0;
  for (const unit of units) {
    switch (verb) {
      case "start":
        code = Math.max(code, await startUnit(unit, out, err, { noBlock }));
        break;
      case "stop":
        await stopUnit(unit);
        break;
      case "restart":
      case "try-restart":
        if (verb === "try-restart" && !unitPid(unit)) break;
        if (!readUnit(unit)) {
          code = Math.max(code, notFound(unit, "restart", err));
          break;
        }
        await stopUnit(unit);
        code = Math.max(code, await startUnit(unit, out, err, { noBlock }));
        break;
      case "is-active": {
        const s = activeState(unit);
        if (!quiet) out(s + "\n");
        if (s !== "active") code = Math.max(code, 3);
        break;
      }
      case "is-failed": {
        const s = activeState(unit);
        if (!quiet) out(s + "\n");
        if (s !== "failed") code = Math.max(code, 1);
        break;
      }
      case "is-enabled": {
        if (!fs.existsSync(unitPath(unit))) {
          if (!quiet) err(`Failed to get unit file state for ${unit}.service: No such file or directory\n`);
          code = Math.max(code, 1);
        } else if (isLink(wantsPath(unit))) {
          if (!quiet) out("enabled\n");
        } else {
          if (!quiet) out("disabled\n");
          code = Math.max(code, 1);
        }
        break;
      }
      case "enable":
        code = Math.max(code, enable(unit, err));
        if (now && code === 0) code = Math.max(code, await startUnit(unit, out, err, { noBlock }));
        break;
      case "disable":
        code = Math.max(code, disable(unit, err));
        if (now) await stopUnit(unit);
        break;
      case "status": {
        if (!fs.existsSync(unitPath(unit))) {
          err(`Unit ${unit}.service could not be found.\n`);
          code = Math.max(code, 4);
          break;
        }
        const s = activeState(unit);
        const rec = unitPid(unit);
        const en = isLink(wantsPath(unit)) ? "enabled" : "disabled";
        out(
          `● ${unit}.service - Lightweight Kubernetes\n     Loaded: loaded (/etc/systemd/system/${unit}.service; ${en}; preset: enabled)\n` +
            `     Active: ${s}${rec ? ` (running) since ${new Date(rec.startedAt).toUTCString()}` : ""}\n` +
            (rec ? `   Main PID: ${rec.pid} (k3s-${roleOf(unit)})\n` : "") +
            `\n${tail(logPath(unit), 10)}\n`,
        );
        if (s !== "active") code = Math.max(code, 3);
        break;
      }
      default:
        err(`Unknown command verb '${verb}'.\n`);
        return 1;
    }
  }
  return code;
}

// ------------------------------------------------------------------ install.sh

function unitText(role, execArgs) {
  const type = role === "server" ? "notify" : "exec";
  const unit = role === "server" ? "k3s" : "k3s-agent";
  const lines = ["/usr/local/bin/k3s \\", `    ${role} \\`, ...execArgs.map((a) => `\t${shq(a)} \\`)];
  lines[lines.length - 1] = lines[lines.length - 1].replace(/ \\$/, "");
  return `[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
# k3s-sim: started by the systemctl stand-in (lab/k3s), which honours Type, EnvironmentFile and ExecStart.
Type=${type}
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/${unit}.service.env
KillMode=process
Delegate=yes
User=root
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=${lines.join("\n")}
`;
}

function scriptText(name, what, subcommand) {
  const env = Object.entries(U.simEnv())
    .map(([k, v]) => `${k}=${shq(v)}`)
    .join(" ");
  return `#!/bin/sh
# ${name}: written by k3s-install.sh (k3s-sim stand-in, lab/k3s/lib/service.js).
# ${what}
${env ? `export ${env}\n` : ""}exec ${shq(process.execPath)} ${shq(ENTRY)} ${subcommand}
`;
}

/** Split INSTALL_K3S_EXEC / args the way install.sh does. */
function commandOf(args) {
  const words = [...(process.env.INSTALL_K3S_EXEC || "").split(/\s+/).filter(Boolean), ...args];
  let role;
  if (words[0] === "server" || words[0] === "agent") role = words.shift();
  else role = process.env.K3S_URL ? "agent" : "server";
  return { role, extra: words };
}

async function install(args, out = (s) => process.stdout.write(s), err = (s) => process.stderr.write(s)) {
  const info = (m) => out(`[INFO]  ${m}\n`);
  const fail = (m) => {
    err(`[ERROR]  ${m}\n`);
    return 1;
  };
  if (process.env.INSTALL_K3S_SKIP_DOWNLOAD !== "true") {
    return fail("k3s-sim: downloads are not simulated (the lab is airgapped); k3s is preinstalled: set INSTALL_K3S_SKIP_DOWNLOAD=true");
  }
  const { role, extra } = commandOf(args);
  if (process.env.K3S_URL && !process.env.K3S_TOKEN && !process.env.K3S_TOKEN_FILE && role === "agent" && !(process.env.INSTALL_K3S_EXEC || "").startsWith("agent")) {
    return fail("Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined.");
  }
  const binShown = process.env.INSTALL_K3S_BIN_DIR || "/usr/local/bin";
  const bin = U.nodePath(binShown);
  info("Skipping k3s download and verify");
  if (!fs.existsSync(path.join(bin, "k3s"))) return fail(`Executable k3s binary not found at ${binShown}/k3s`);
  info("Skipping installation of SELinux RPM");
  for (const cmd of ["kubectl", "crictl", "ctr"]) {
    const p = path.join(bin, cmd);
    if (fs.existsSync(p) || isLink(p)) info(`Skipping ${binShown}/${cmd} symlink to k3s, already exists`);
    else if (cmd === "kubectl") {
      info(`Creating ${binShown}/${cmd} symlink to k3s`);
      fs.symlinkSync("k3s", p);
    } else info(`Skipping ${binShown}/${cmd} symlink to k3s, command not simulated`);
  }
  const unit = role === "server" ? "k3s" : "k3s-agent";
  const killall = path.join(bin, "k3s-killall.sh");
  const uninstallName = role === "server" ? "k3s-uninstall.sh" : "k3s-agent-uninstall.sh";
  info(`Creating killall script ${binShown}/k3s-killall.sh`);
  U.writeAtomic(killall, scriptText("k3s-killall.sh", "Stops k3s and k3s-agent on this node (the Node object stays in the cluster).", "k3s-sim-killall"), 0o755);
  info(`Creating uninstall script ${binShown}/${uninstallName}`);
  U.writeAtomic(
    path.join(bin, uninstallName),
    scriptText(uninstallName, "Stops k3s, removes its unit, /etc/rancher/k3s and /var/lib/rancher/k3s; the Node stays (NotReady) until `kubectl delete node`.", `k3s-sim-uninstall ${role}`),
    0o755,
  );
  info(`env: Creating environment file /etc/systemd/system/${unit}.service.env`);
  const envLines = Object.entries(process.env)
    .filter(([k]) => /^K3S_/.test(k) && !k.startsWith("K3S_SIM_"))
    .map(([k, v]) => `${k}=${shq(v)}`);
  U.writeAtomic(envPath(unit), envLines.join("\n") + (envLines.length ? "\n" : ""), 0o600);
  info(`systemd: Creating service file /etc/systemd/system/${unit}.service`);
  U.writeAtomic(unitPath(unit), unitText(role, extra), 0o644);
  if (process.env.INSTALL_K3S_SKIP_ENABLE === "true") return 0;
  info(`systemd: Enabling ${unit} unit`);
  enable(unit, err);
  if (process.env.INSTALL_K3S_SKIP_START === "true") return 0;
  info(`systemd: Starting ${unit}`);
  await stopUnit(unit);
  return startUnit(unit, out, err);
}

async function killall(out = (s) => process.stdout.write(s)) {
  for (const unit of UNITS) {
    if (unitPid(unit)) out(`+ systemctl stop ${unit}\n`);
    await stopUnit(unit);
  }
  const rt = U.readJson(D.runtimeFile(), undefined);
  if (rt && U.processAlive(rt) === true) {
    out(`+ kill ${rt.pid}\n`);
    try {
      process.kill(rt.pid, "SIGTERM");
    } catch {
      // gone
    }
    if (!(await waitGone(rt, 10000))) {
      try {
        process.kill(rt.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  fs.rmSync(D.runtimeFile(), { force: true });
  if (require("./components").killRecorded()) out("+ kill etcd/kube-apiserver/kube-controller-manager/kube-scheduler/kwok\n");
  for (const d of ["/run/k3s", "/run/flannel"]) fs.rmSync(U.nodePath(d), { recursive: true, force: true });
  return 0;
}

async function uninstall(role, out = (s) => process.stdout.write(s), err = (s) => process.stderr.write(s)) {
  const unit = role === "server" ? "k3s" : "k3s-agent";
  const bin = U.nodePath(process.env.INSTALL_K3S_BIN_DIR || "/usr/local/bin");
  let node = "";
  try {
    node = require("./config").load(role, []).nodeName;
  } catch {
    node = "";
  }
  await killall(out);
  out(`+ systemctl disable ${unit}\n`);
  disable(unit, err);
  for (const f of [unitPath(unit), envPath(unit)]) fs.rmSync(f, { force: true });
  for (const d of ["/etc/rancher/k3s", "/run/k3s", "/run/flannel", "/var/lib/rancher/k3s", "/var/lib/kubelet", "/run/k3s-sim"]) {
    out(`+ rm -rf ${d}\n`);
    fs.rmSync(U.nodePath(d), { recursive: true, force: true });
  }
  for (const cmd of ["kubectl", "crictl", "ctr"]) if (isLink(path.join(bin, cmd))) fs.rmSync(path.join(bin, cmd), { force: true });
  if (U.settings().removeBinary) fs.rmSync(path.join(bin, "k3s"), { force: true });
  fs.rmSync(path.join(bin, "k3s-killall.sh"), { force: true });
  fs.rmSync(path.join(bin, role === "server" ? "k3s-uninstall.sh" : "k3s-agent-uninstall.sh"), { force: true });
  const cluster = U.settings().cluster;
  if (cluster && node) U.joinLog(cluster, node, role, "uninstalled");
  return 0;
}

/** Boot hook for the lab: start every enabled k3s unit (what systemd does at boot). */
async function boot(out, err) {
  let code = 0;
  for (const unit of UNITS) if (isLink(wantsPath(unit))) code = Math.max(code, await startUnit(unit, out, err, { noBlock: true }));
  return code;
}

/** Write wrapper executables for one node into binDir, with the simulation's environment baked in. */
function installInto(binDir, env, nodeBin = process.execPath) {
  fs.mkdirSync(binDir, { recursive: true });
  const dir = path.resolve(__dirname, "..");
  const envLine = Object.entries(env)
    .map(([k, v]) => {
      if (!/^K3S_SIM_[A-Z0-9_]+$/.test(k)) throw new Error(`k3s-sim install-into: ${k} is not a K3S_SIM_* variable`);
      return `${k}=${shq(v)}`;
    })
    .join(" ");
  const head = (name) => `#!/bin/sh\n# ${name}: k3s-sim stand-in (lab/k3s), written by install-into.\n${envLine ? `export ${envLine}\n` : ""}`;
  const w = (name, target, pre) =>
    U.writeAtomic(path.join(binDir, name), `${head(name)}exec ${shq(nodeBin)} ${shq(path.join(dir, target))}${pre ? " " + pre : ""} "$@"\n`, 0o755);
  // k3s is multi-call: a `kubectl` symlink to it (install.sh creates one) must still act as kubectl
  U.writeAtomic(
    path.join(binDir, "k3s"),
    `${head("k3s")}case "\${0##*/}" in kubectl) entry=kubectl ;; *) entry=k3s ;; esac\nexec ${shq(nodeBin)} ${shq(dir)}/"$entry" "$@"\n`,
    0o755,
  );
  w("kubectl", "kubectl");
  w("systemctl", "systemctl");
  w("k3s-install.sh", "k3s", "k3s-sim-install");
  w("k3s-sim", "k3s", "k3s-sim");
  return ["k3s", "kubectl", "systemctl", "k3s-install.sh", "k3s-sim"].map((n) => path.join(binDir, n));
}

module.exports = { systemctl, install, killall, uninstall, boot, installInto, startUnit, stopUnit, readUnit };
