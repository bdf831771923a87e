/**
 * Lab harness: several labs side by side without collisions, hosts isolated from each other and from
 * this machine, clean stop, the CLI (detached supervisor, status, fault, stop), and the spec derived
 * from the dev stack's fleet.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { specFromStack } from "../../lab/cli";
import { Lab, startLab } from "../../lab/lab";
import { allocateAddresses, validateSpec } from "../../lab/spec";
import { SshHost, connectSsh } from "../../lib/transport/ssh";

const exec = promisify(execFile);
jest.setTimeout(120_000);
const ROOT = path.resolve(__dirname, "../..");

let tmp: string;
const labs: Lab[] = [];
const opened: SshHost[] = [];

async function connect(lab: Lab, name: string): Promise<SshHost> {
  const h = lab.hosts[name];
  const s = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 5000 });
  opened.push(s);
  return s;
}

function portFree(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ host: address, port }, () => s.close(() => resolve(true)));
  });
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "labs-test-"));
});

afterAll(async () => {
  for (const h of opened) await h.close().catch(() => undefined);
  for (const l of labs) await l.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("two labs side by side: own addresses, keys and files; stopping one leaves the other", async () => {
  const spec = {
    hosts: [
      { name: "bmc", role: "bmc" as const },
      { name: "n", role: "node" as const, swupdate: { devices: {} } },
    ],
  };
  const [l1, l2] = await Promise.all([
    startLab(spec, path.join(tmp, "l1"), { ownerPid: process.pid }),
    startLab(spec, path.join(tmp, "l2"), { ownerPid: process.pid }),
  ]);
  labs.push(l1, l2);
  expect(l1.hosts.n.address).not.toBe(l2.hosts.n.address);
  expect(l1.hosts.bmc.address).not.toBe(l2.hosts.bmc.address);
  expect(l1.hosts.n.hostKey).not.toBe(l2.hosts.n.hostKey);
  expect(l1.deployKey.publicKey).not.toBe(l2.deployKey.publicKey);
  for (const l of [l1, l2]) for (const h of Object.values(l.hosts)) expect(h.address).toMatch(/^127\./);

  const a = await connect(l1, "n");
  const b = await connect(l2, "n");
  const bmc1 = await connect(l1, "bmc");
  await a.run(["sh", "-c", "echo lab1 > /etc/which; echo t > /tmp/t; echo r > /root/r; echo v > /var/lib/v"]);
  for (const p of ["/etc/which", "/tmp/t", "/root/r", "/var/lib/v"]) {
    expect((await b.run(["test", "-e", p])).code).toBe(1);
    expect((await bmc1.run(["test", "-e", p])).code).toBe(1);
  }
  expect(fs.existsSync("/etc/which")).toBe(false);
  expect(fs.existsSync("/var/lib/v")).toBe(false);
  // this machine's system directories are read-only from a host
  const ro = await a.run(["sh", "-c", "touch /usr/lab-write-test"]);
  expect(ro.code).not.toBe(0);
  expect(ro.stderr.toString()).toMatch(/Read-only file system/);
  expect(fs.existsSync("/usr/lab-write-test")).toBe(false);
  // each host has its own hostname and process table
  expect((await a.run(["hostname"])).stdout.toString().trim()).toBe("n");
  const ps = (await a.run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"])).stdout.toString().trim();
  expect(Number(ps)).toBeLessThan(15);
  // a tpi on l1's BMC talks to l1's bmcd only
  const info = JSON.parse((await bmc1.run(["tpi", "--json", "info"])).stdout.toString());
  expect(info.response[0].result[0].ip).toBe(l1.hosts.bmc.address);

  const pids = l1.processes("n").map((p) => p.pid);
  expect(pids.length).toBeGreaterThan(1);
  await l1.stop();
  for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  expect(await portFree(l1.hosts.n.address, 22)).toBe(true);
  expect(await portFree(l1.hosts.bmc.address, 443)).toBe(true);
  expect((await b.run(["cat", "/etc/hostname"])).stdout.toString()).toBe("n\n");
});

test("a lab dir under the home directory (a clone in root's home): hosts start, keep their own /root, reboot", async () => {
  // Hosts replace /root with their own; node-init.sh reaches its host dir through an open descriptor.
  const home = fs.mkdtempSync(path.join(os.homedir(), ".isar-k3s-labs-test-"));
  try {
    const lab = await startLab({ hosts: [{ name: "n", role: "node" as const, swupdate: { devices: {} } }] }, path.join(home, "lab"), { ownerPid: process.pid });
    labs.push(lab);
    const h = await connect(lab, "n");
    expect((await h.run(["test", "-e", home])).code).toBe(1); // the machine's /root is not the host's
    await h.run(["sh", "-c", "echo mine > /root/own"]);
    expect(fs.readFileSync(path.join(home, "lab", "hosts", "n", "fs", "root", "own"), "utf8")).toBe("mine\n");
    expect((await h.run(["test", "-x", path.join(ROOT, "lab", "node-init.sh")])).code).toBe(0); // project still visible
    await h.run(["reboot"]);
    let back = 1;
    for (let i = 0; i < 100 && back !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      back = await connect(lab, "n")
        .then((c) => c.run(["cat", "/root/own"]).then((r) => r.code ?? 1))
        .catch(() => 1);
    }
    expect(back).toBe(0);
    await lab.stop();
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test("a lab dies with the process that runs it (no orphaned sshd)", async () => {
  const dir = path.join(tmp, "orphan");
  const script = `require(${JSON.stringify(path.join(ROOT, "lab/ts-require.js"))});
    const { startLab } = require(${JSON.stringify(path.join(ROOT, "lab/lab.ts"))});
    startLab({ hosts: [{ name: "x", role: "node", swupdate: { devices: {} } }] }, ${JSON.stringify(dir)}).then((l) => {
      console.log(JSON.stringify(l.status()));
    });`;
  const child = require("child_process").spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const line: string = await new Promise((resolve) => child.stdout.once("data", (d: Buffer) => resolve(d.toString())));
  const st = JSON.parse(line);
  const init = st.hosts.x.initPid as number;
  expect(() => process.kill(init, 0)).not.toThrow();
  child.kill("SIGKILL");
  const end = Date.now() + 5000;
  let alive = true;
  while (alive && Date.now() < end) {
    try {
      process.kill(init, 0);
      await new Promise((r) => setTimeout(r, 50));
    } catch {
      alive = false;
    }
  }
  expect(alive).toBe(false);
  expect(await portFree(st.hosts.x.address, 22)).toBe(true);
});

test("per-host tools on PATH and boot hooks (the extension point for k3s stand-ins)", async () => {
  const lab = await startLab({ hosts: [{ name: "n", role: "node", swupdate: { devices: {} } }], bootDelayMs: 100 }, path.join(tmp, "ext"), {
    ownerPid: process.pid,
  });
  labs.push(lab);
  await lab.installTool("n", "hello-tool", '#!/bin/sh\necho "hello from $(hostname): $*"\n');
  await lab.installTool("n", "10-marker", "#!/bin/sh\ndate +%s%N > /run/booted-marker\n", { boot: true });
  const h = await connect(lab, "n");
  expect((await h.run(["hello-tool", "a b"])).stdout.toString()).toBe("hello from n: a b\n");
  expect((await h.run(["test", "-e", "/run/booted-marker"])).code).toBe(1); // hooks run from the next boot
  await h.run(["reboot"]);
  const end = Date.now() + 10_000;
  while (lab.status().hosts.n.up && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  const after = await connect(lab, "n");
  let marker = 1;
  for (let i = 0; i < 50 && marker !== 0; i++) {
    marker = (await after.run(["test", "-s", "/run/booted-marker"])).code ?? 1;
    if (marker !== 0) await new Promise((r) => setTimeout(r, 100));
  }
  expect(marker).toBe(0);
  // the tool is on this host only
  expect(fs.existsSync("/usr/local/bin/hello-tool")).toBe(false);
});

test("spec validation refuses non-loopback addresses and taken endpoints", async () => {
  expect(() => validateSpec({ hosts: [{ name: "a", role: "node", address: "10.0.0.1" }] })).toThrow(/not a 127\.0\.0\.0\/8 host address/);
  expect(() => validateSpec({ hosts: [{ name: "a", role: "node", tpi: { bmc: "nope", slot: 1 } }] })).toThrow(/not a BMC host/);
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen({ host: "127.9.9.9", port: 22 }, () => r()));
  try {
    await expect(allocateAddresses({ hosts: [{ name: "a", role: "node", address: "127.9.9.9" }] })).rejects.toThrow(/already in use/);
  } finally {
    srv.close();
  }
});

test("the dev stack's lab: BMC, three slot nodes and two SWUpdate nodes at the fleet's addresses and pinned keys", () => {
  const spec = specFromStack("dev", ROOT);
  const byName = Object.fromEntries(spec.hosts.map((h) => [h.name, h]));
  expect(Object.keys(byName).sort()).toEqual(["agent1", "bmc", "jetson1", "jetson2", "srv1", "srv2"]);
  expect(byName.bmc.role).toBe("bmc");
  expect([byName.srv1.tpi, byName.srv2.tpi, byName.agent1.tpi]).toEqual([1, 2, 3].map((slot) => ({ bmc: "bmc", slot })));
  expect(byName.agent1.disks).toEqual({ sda1: { sizeBytes: 256 << 20, filesystem: "ext4" } });
  for (const j of ["jetson1", "jetson2"]) {
    expect(byName[j].swupdate?.devices).toHaveProperty("mmcblk0p1");
    expect(byName[j].hwRevision).toBe("jetson-orin-nano 1.0");
    expect(byName[j].hostKeyFile).toBe(path.join(ROOT, `dev/keys/${j}_host_ed25519`));
  }
  for (const h of spec.hosts) expect(h.address).toMatch(/^127\.77\.0\./);
  expect(spec.deployKeyFile).toBe(path.join(ROOT, "dev/keys/deploy_ed25519"));
  expect(byName.bmc.hostKeyFile).toBe(path.join(ROOT, "dev/keys/bmc_host_ed25519"));
});

test("CLI: start (detached), status, fault, power, stop", async () => {
  const dir = path.join(tmp, "cli");
  const specFile = path.join(tmp, "cli-spec.json");
  fs.writeFileSync(
    specFile,
    JSON.stringify({
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "s1", role: "node", tpi: { bmc: "bmc", slot: 1 } },
      ],
    }),
  );
  const cli = (...args: string[]) =>
    exec(process.execPath, ["-r", path.join(ROOT, "lab/ts-require.js"), path.join(ROOT, "lab/cli.ts"), ...args], { cwd: ROOT, timeout: 90_000 });
  try {
    const started = await cli("start", "--dir", dir, "--spec", specFile, "--json");
    const st = JSON.parse(started.stdout);
    expect(st.hosts.bmc.up).toBe(true);
    expect(st.hosts.s1.up).toBe(false);
    const again = await cli("start", "--dir", dir, "--spec", specFile).catch((e) => e);
    expect(again.stderr).toMatch(/already running/);
    await cli("fault", "--dir", dir, "bmc-unreachable");
    expect(JSON.parse((await cli("status", "--dir", dir, "--json")).stdout).hosts.bmc.up).toBe(false);
    await cli("fault", "--dir", dir, "clear");
    const bmc = JSON.parse((await cli("status", "--dir", dir, "--json")).stdout).hosts.bmc;
    expect(bmc.up).toBe(true);
    const pid = bmc.initPid as number;
    await cli("power", "--dir", dir, "reboot", "bmc");
    expect(JSON.parse((await cli("status", "--dir", dir, "--json")).stdout).hosts.bmc.initPid).not.toBe(pid);
    const text = (await cli("status", "--dir", dir)).stdout;
    expect(text).toMatch(/s1 .* off .* tpi bmc slot 1/);
  } finally {
    await cli("stop", "--dir", dir).catch(() => undefined);
  }
  expect(fs.existsSync(path.join(dir, "ctl.sock"))).toBe(false);
  const final = JSON.parse(fs.readFileSync(path.join(dir, "lab.json"), "utf8"));
  expect(final.stopped).toBe(true);
  expect(await portFree(final.hosts.bmc.address, 22)).toBe(true);
});
