/**
 * The generated post-update script, executed by real dash and busybox sh. systemctl, k3s and sleep are
 * replaced on PATH by recorders (this tests our script's logic, not k3s): which unit is restarted, that
 * readiness is asked for this node with the kubelet's own kubeconfig, the timeout, and "preinst" no-ops.
 */
import * as fs from "fs";
import * as path from "path";
import { renderPostUpdateScript, PostUpdateScriptOptions } from "../../lib/swupdate/postupdate";
import { run } from "../../lib/swupdate/run";
import { tempDir } from "./helpers";

let dir: string;
beforeAll(async () => {
  dir = await tempDir("swu-post-");
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

interface Fake {
  enabled: string[]; // units reported enabled
  readyAfter: number; // number of "get node" calls answering False before True; -1 = never
}

async function runScript(shell: string[], opts: PostUpdateScriptOptions, fake: Fake, arg = "postinst") {
  const d = await fs.promises.mkdtemp(path.join(dir, "run-"));
  const bin = path.join(d, "bin");
  await fs.promises.mkdir(bin);
  const log = path.join(d, "calls.log");
  const counter = path.join(d, "count");
  await fs.promises.writeFile(counter, "0");
  const w = (name: string, body: string) => fs.promises.writeFile(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> ${log}\n${body}\n`, { mode: 0o755 });
  await w("systemctl", `[ "$1" = is-enabled ] && { for u in ${fake.enabled.join(" ")}; do [ "$3" = "$u" ] && exit 0; done; exit 1; }; exit 0`);
  await w(
    "k3s",
    `n=$(cat ${counter}); echo $((n + 1)) > ${counter}
if [ ${fake.readyAfter} -ge 0 ] && [ "$n" -ge ${fake.readyAfter} ]; then printf True; else printf False; fi`,
  );
  await w("sleep", "exit 0");
  await w("hostname", "echo node-from-hostname");
  const script = path.join(d, "post-update.sh");
  await fs.promises.writeFile(script, renderPostUpdateScript(opts), { mode: 0o755 });
  const r = await run([...shell, script, arg], { env: { PATH: `${bin}:/usr/bin:/bin` }, timeoutMs: 20_000 });
  const calls = fs.existsSync(log) ? (await fs.promises.readFile(log, "utf8")).trim().split("\n") : [];
  return { ...r, calls };
}

const shells: [string, string[]][] = [
  ["dash", ["/bin/dash"]],
  ["busybox sh", ["busybox", "sh"]],
];

describe.each(shells)("%s", (_name, shell) => {
  test("agent: restarts k3s-agent and waits until its own node is Ready", async () => {
    const r = await runScript(shell, { nodeName: "jetson-1", pollSeconds: 1, timeoutSeconds: 60 }, { enabled: ["k3s-agent"], readyAfter: 2 });
    expect(r.stdout.toString()).toMatch(/node jetson-1 is Ready/);
    expect(r.code).toBe(0);
    expect(r.calls).toContain("systemctl restart k3s-agent");
    expect(r.calls).not.toContain("systemctl restart k3s");
    const gets = r.calls.filter((c) => c.startsWith("k3s "));
    expect(gets).toHaveLength(3);
    expect(gets[0]).toBe(
      'k3s kubectl --kubeconfig /var/lib/rancher/k3s/agent/kubelet.kubeconfig get node jetson-1 -o jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    );
    // busybox runs its own sleep applet, not the recorder on PATH
    if (_name === "dash") expect(r.calls.filter((c) => c === "sleep 1")).toHaveLength(2);
  });

  test("server: restarts k3s; node name falls back to hostname", async () => {
    const r = await runScript(shell, {}, { enabled: ["k3s"], readyAfter: 0 });
    expect(r.code).toBe(0);
    expect(r.calls).toContain("systemctl restart k3s");
    // busybox runs its own hostname applet: the node is then this machine's name
    const want = _name === "dash" ? "node-from-hostname" : (await run(["hostname"])).stdout.toString().trim();
    expect(r.calls.find((c) => c.startsWith("k3s "))).toContain(`get node ${want} `);
  });

  test("not Ready within the timeout: exit 1 with a message naming node and unit", async () => {
    const r = await runScript(shell, { nodeName: "ctrl-1", role: "server", timeoutSeconds: 2, pollSeconds: 1 }, { enabled: [], readyAfter: -1 });
    expect(r.code).toBe(1);
    expect(r.stderrTail).toMatch(/node ctrl-1 not Ready 2 s after restarting k3s \(last status: False\)/);
    expect(r.calls.filter((c) => c.startsWith("k3s "))).toHaveLength(3); // t = 0, 1, 2
  });

  test("neither unit enabled (first delivery, before the join): exit 0 without restarting anything", async () => {
    const r = await runScript(shell, {}, { enabled: [], readyAfter: 0 });
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toMatch(/neither k3s nor k3s-agent is enabled: not joined yet/);
    expect(r.stderrTail).toBe("");
    expect(r.calls.some((c) => c.startsWith("systemctl restart"))).toBe(false);
  });

  test('"preinst" (SWUpdate calls the script before installing too) does nothing', async () => {
    const r = await runScript(shell, {}, { enabled: ["k3s"], readyAfter: 0 }, "preinst");
    expect(r.code).toBe(0);
    expect(r.calls).toEqual([]);
  });
});

test("every option combination is valid sh (dash -n)", async () => {
  for (const role of [undefined, "server", "agent"] as const) {
    for (const nodeName of [undefined, "n1"]) {
      const f = path.join(dir, `syntax-${role}-${nodeName}.sh`);
      await fs.promises.writeFile(f, renderPostUpdateScript({ role, nodeName }));
      const r = await run(["/bin/dash", "-n", f]);
      expect(r.stderrTail).toBe("");
      expect(r.code).toBe(0);
    }
  }
});

test("node-name is read from /etc/rancher/k3s/config.yaml when present", () => {
  expect(renderPostUpdateScript()).toContain("sed -n 's/^node-name:[[:space:]]*//p' /etc/rancher/k3s/config.yaml");
});

test("options are validated", () => {
  expect(() => renderPostUpdateScript({ timeoutSeconds: 0 })).toThrow(/timeoutSeconds/);
  expect(() => renderPostUpdateScript({ nodeName: "Bad Name; rm -rf /" })).toThrow(/not a Kubernetes node name/);
  expect(renderPostUpdateScript()).toBe(renderPostUpdateScript());
});
