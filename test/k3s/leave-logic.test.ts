/**
 * Decision logic of a node leaving the cluster (issue 15 item 3): quorum math, the assessment of a
 * server's leave from a cluster view, the parsers of kubectl's node list and etcd's member list, the
 * refusal text, leaveCluster's order of steps against scripted servers (refused before anything is
 * changed; snapshot, cordon, drain, delete in that order), and the engine watchdog.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { assessLeave, ClusterNode, ClusterView, MemberHealth, parseMemberList, parseNodeList, quorumOf, readClusterView } from "../../lib/k3s/health";
import { leaveCluster, refusal } from "../../lib/k3s/leave";
import { RootShell } from "../../lib/k3s/join";
import { checkLeave, diffLeave } from "../../lib/k3s/leave-provider";
import { childPids } from "../../lib/engine-watch";
import { diffNode, needsRejoin } from "../../lib/k3s/k3s-provider";
import type { Host, RunOptions, RunResult } from "../../lib/transport/host";

const server = (name: string, ready = true): ClusterNode => ({
  name,
  ready,
  readyDetail: ready ? "Ready=True" : "Ready=Unknown (NodeStatusUnknown)",
  server: true,
  etcdMember: `${name}-0000abcd`,
  etcdAddress: `10.0.0.${name.slice(-1)}`,
});
const member = (name: string, healthy = true, learner = false): MemberHealth => ({
  id: String(1000 + name.charCodeAt(name.length - 1)),
  name: `${name}-0000abcd`,
  clientUrls: [`https://10.0.0.${name.slice(-1)}:2379`],
  learner,
  healthy,
  detail: healthy ? "ok" : "unreachable at https://10.0.0.3:2379: Connection refused",
});
const view = (nodes: ClusterNode[], members: MemberHealth[]): ClusterView => ({ via: "deploy@s1", nodes, members });

describe("quorum math", () => {
  test("majority of n voters", () => {
    expect([1, 2, 3, 4, 5, 6, 7].map(quorumOf)).toEqual([1, 2, 2, 3, 3, 4, 4]);
  });

  test("three healthy servers: any one may leave", () => {
    const a = assessLeave(
      view([server("s1"), server("s2"), server("s3"), { ...server("a1"), server: false }], [member("s1"), member("s2"), member("s3")]),
      "s2",
    );
    expect(a.problems).toEqual([]);
    expect(a.member?.name).toBe("s2-0000abcd");
    expect([a.remainingVoters, a.healthyRemaining, a.lastServer]).toEqual([2, 2, false]);
  });

  test("one of three down: the other two may not leave; the down one may (re-flash to repair it)", () => {
    const v = view([server("s1"), server("s2"), server("s3", false)], [member("s1"), member("s2"), member("s3", false)]);
    const a = assessLeave(v, "s2");
    expect(a.problems).toEqual([
      "etcd member s3-0000abcd (server s3) is not healthy: unreachable at https://10.0.0.3:2379: Connection refused",
      "server s3 is not Ready (Ready=Unknown (NodeStatusUnknown))",
      "after s2 leaves, 1 of the 2 remaining etcd voting member(s) are healthy; quorum needs 2",
    ]);
    expect(assessLeave(v, "s3").problems).toEqual([]);
  });

  test("five servers, one down: quorum holds but a remaining server is not Ready, so still refused", () => {
    const names = ["s1", "s2", "s3", "s4", "s5"];
    const v = view(
      names.map((n) => server(n, n !== "s5")),
      names.map((n) => member(n, n !== "s5")),
    );
    const a = assessLeave(v, "s1");
    expect([a.remainingVoters, a.healthyRemaining]).toEqual([4, 3]);
    expect(a.problems.some((p) => /quorum/.test(p))).toBe(false);
    expect(a.problems).toContain("server s5 is not Ready (Ready=Unknown (NodeStatusUnknown))");
  });

  test("a learner (a join in progress) blocks a leave", () => {
    const a = assessLeave(view([server("s1"), server("s2"), server("s3")], [member("s1"), member("s2"), member("s3", false, true)]), "s1");
    expect(a.problems[0]).toBe("etcd member s3-0000abcd is a learner (a server join is in progress): wait until it is promoted");
  });

  test("the last server may leave (the cluster ends with it); a member without annotation is found by k3s's naming", () => {
    const a = assessLeave(view([{ ...server("s1"), etcdMember: undefined }], [member("s1")]), "s1");
    expect(a).toMatchObject({ problems: [], lastServer: true, remainingVoters: 0 });
    expect(a.member?.name).toBe("s1-0000abcd");
  });

  test("refusal names the node, each missing piece, where it was checked and the fix", () => {
    const t = refusal({ node: "srv2", hostname: "srv2", why: "re-flash" }, ["server s3 is not Ready (x)"], "srv1");
    expect(t).toMatch(/^refusing the re-flash of server srv2: /);
    expect(t).toContain("  - server s3 is not Ready (x)");
    expect(t).toContain("checked through srv1; nothing was changed: srv2 was not drained, flashed or removed");
    expect(t).toMatch(/How to fix: .*every server Ready/);
  });
});

describe("parsers", () => {
  test("kubectl get nodes -o json: Ready, server role, etcd annotations", () => {
    const nodes = parseNodeList(
      JSON.stringify({
        kind: "List",
        items: [
          {
            metadata: {
              name: "s1",
              labels: { "node-role.kubernetes.io/etcd": "true" },
              annotations: { "etcd.k3s.cattle.io/node-name": "s1-1a2b3c4d", "etcd.k3s.cattle.io/node-address": "10.0.0.1" },
            },
            status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
          },
          {
            metadata: { name: "a1", labels: {} },
            status: { conditions: [{ type: "Ready", status: "Unknown", reason: "NodeStatusUnknown", message: "Kubelet stopped posting node status." }] },
          },
        ],
      }),
    );
    expect(nodes).toEqual([
      { name: "s1", ready: true, readyDetail: "Ready=True (KubeletReady)", server: true, etcdMember: "s1-1a2b3c4d", etcdAddress: "10.0.0.1" },
      { name: "a1", ready: false, readyDetail: "Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)", server: false },
    ]);
    expect(() => parseNodeList("{}")).toThrow(/no item list/);
  });

  test("etcd gateway member list (uint64 ids as strings, isLearner)", () => {
    const ms = parseMemberList(
      '{"header":{"cluster_id":"1"},"members":[{"ID":"12345678901234567890","name":"s1-aa","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},{"ID":"5","name":"s2-bb","clientURLs":[],"isLearner":true}]}',
    );
    expect(ms).toEqual([
      { id: "12345678901234567890", name: "s1-aa", clientUrls: ["https://10.0.0.1:2379"], learner: false },
      { id: "5", name: "s2-bb", clientUrls: [], learner: true },
    ]);
    expect(() => parseMemberList('{"error":"etcdserver: no leader","message":"etcdserver: no leader"}')).toThrow(/no leader/);
  });
});

/** A scripted server: answers kubectl / curl / k3s etcd-snapshot from a mutable cluster model, recording every argv. */
class FakeServer implements Host {
  readonly argv: string[][] = [];
  constructor(
    readonly label: string,
    readonly cluster: { nodes: ClusterNode[]; members: MemberHealth[]; snapshot: Buffer },
  ) {}
  async run(argv: string[], _o?: RunOptions): Promise<RunResult> {
    this.argv.push(argv);
    const ok = (s: string | Buffer): RunResult =>
      ({ code: 0, signal: null, stdout: Buffer.isBuffer(s) ? s : Buffer.from(s), stderr: Buffer.alloc(0) }) as RunResult;
    const j = argv.join(" ");
    const c = this.cluster;
    if (j === "k3s kubectl get nodes -o json") {
      const items = c.nodes.map((n) => ({
        metadata: {
          name: n.name,
          labels: n.server ? { "node-role.kubernetes.io/etcd": "true" } : {},
          annotations: n.etcdMember ? { "etcd.k3s.cattle.io/node-name": n.etcdMember, "etcd.k3s.cattle.io/node-address": n.etcdAddress } : {},
        },
        status: { conditions: [{ type: "Ready", status: n.ready ? "True" : "Unknown" }] },
      }));
      return ok(JSON.stringify({ kind: "List", items }));
    }
    if (argv[0] === "curl" && j.endsWith("/v3/cluster/member/list"))
      return ok(JSON.stringify({ members: c.members.map((m) => ({ ID: m.id, name: m.name, clientURLs: m.clientUrls, isLearner: m.learner })) }));
    if (argv[0] === "curl" && j.endsWith("/health")) {
      const m = c.members.find((x) => j.includes(x.clientUrls[0]))!;
      return m.healthy
        ? ok('{"health":"true","reason":""}')
        : { code: 7, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.from("curl: (7) Failed to connect"), stdoutTruncated: false };
    }
    if (j.startsWith("k3s etcd-snapshot save"))
      return {
        code: 0,
        signal: null,
        stdout: Buffer.alloc(0),
        stderr: Buffer.from('level=info msg="Saving etcd snapshot to /var/lib/rancher/k3s/server/db/snapshots/isar-k3s-before-s2-s1-1700000000"\n'),
        stdoutTruncated: false,
      };
    if (argv[0] === "cat") return ok(c.snapshot);
    if (argv[0] === "sha256sum") return ok(`${require("crypto").createHash("sha256").update(c.snapshot).digest("hex")}  ${argv[2]}\n`);
    if (j.startsWith("k3s kubectl delete node")) {
      const h = argv[4];
      const n = c.nodes.find((x) => x.name === h);
      c.nodes = c.nodes.filter((x) => x.name !== h);
      c.members = c.members.filter((m) => m.name !== n?.etcdMember);
      return ok(`node "${h}" deleted\n`);
    }
    if (argv[1] === "kubectl") return ok("");
    throw new Error(`unexpected ${j}`);
  }
  upload(): never {
    throw new Error("no upload");
  }
  readFile(): never {
    throw new Error("no readFile");
  }
  async sha256(): Promise<undefined> {
    return undefined;
  }
  async close(): Promise<void> {}
}

test("cluster view: a Node still Ready while its etcd is gone (re-flashed, within the grace period) is passed over for the next server", async () => {
  const cluster = { nodes: [server("s1"), server("s2"), server("s3")], members: [member("s1"), member("s2"), member("s3")], snapshot: Buffer.alloc(0) };
  class S1Gone extends FakeServer {
    async run(argv: string[], o?: RunOptions): Promise<RunResult> {
      if (argv[0] === "curl" && argv.join(" ").includes("https://10.0.0.1:2379/v3/cluster/member/list")) {
        this.argv.push(argv);
        return { code: 7, signal: null, stdout: Buffer.alloc(0), stderr: Buffer.from("curl: (7) Failed to connect"), stdoutTruncated: false } as RunResult;
      }
      return super.run(argv, o);
    }
  }
  const via = new S1Gone("deploy@s2", cluster);
  const view = await readClusterView(new RootShell(via), {});
  expect(view.members.map((m) => m.name)).toEqual(["s1-0000abcd", "s2-0000abcd", "s3-0000abcd"]);
  expect(via.argv.filter((a) => a.join(" ").endsWith("/v3/cluster/member/list")).map((a) => a.find((x) => x.startsWith("https://")))).toEqual([
    "https://10.0.0.1:2379/v3/cluster/member/list",
    "https://10.0.0.2:2379/v3/cluster/member/list",
  ]);
  // a named server's etcd is not replaced by another's
  await expect(readClusterView(new RootShell(via), { hostname: "s1" })).rejects.toThrow(/cannot list etcd members at https:\/\/10.0.0.1:2379/);
});

describe("leaveCluster against scripted servers", () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "leave-"));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const spec = { node: "s2", hostname: "s2", role: "server" as const, why: "re-flash", drainTimeoutSeconds: 20, deleteNode: true };

  test("a server leaves: snapshot (0600, in a 0700 dir) before cordon, drain, delete; its member is gone", async () => {
    const cluster = {
      nodes: [server("s1"), server("s2"), server("s3")],
      members: [member("s1"), member("s2"), member("s3")],
      snapshot: Buffer.from("etcd-db-bytes"),
    };
    const s1 = new FakeServer("deploy@s1", cluster);
    const snapDir = path.join(dir, "etcd-snapshots");
    const r = await leaveCluster({ servers: [{ name: "s1", hostname: "s1", shell: new RootShell(s1) }], pollMs: 1 }, { ...spec, snapshotDir: snapDir });
    expect(r).toMatchObject({ action: "left", via: "s1", drained: true, nodeDeleted: true, memberRemoved: "s2-0000abcd" });
    expect(fs.readFileSync(r.snapshot!, "utf8")).toBe("etcd-db-bytes");
    expect(fs.statSync(r.snapshot!).mode & 0o777).toBe(0o600);
    expect(fs.statSync(snapDir).mode & 0o777).toBe(0o700);
    const steps = s1.argv.map((a) => a.slice(0, 3).join(" ")).filter((a) => /^k3s (etcd-snapshot|kubectl (cordon|drain|delete))/.test(a));
    expect(steps).toEqual(["k3s etcd-snapshot save", "k3s kubectl cordon", "k3s kubectl drain", "k3s kubectl delete"]);
  });

  test("refused with another server down: nothing but reads ran", async () => {
    const cluster = {
      nodes: [server("s1"), server("s2"), server("s3", false)],
      members: [member("s1"), member("s2"), member("s3", false)],
      snapshot: Buffer.alloc(0),
    };
    const s1 = new FakeServer("deploy@s1", cluster);
    await expect(
      leaveCluster(
        {
          servers: [
            { name: "s3", hostname: "s3", shell: { unreachable: "connect ECONNREFUSED" } },
            { name: "s1", hostname: "s1", shell: new RootShell(s1) },
          ],
        },
        { ...spec, snapshotDir: path.join(dir, "x") },
      ),
    ).rejects.toThrow(/refusing the re-flash of server s2[\s\S]*server s3 is not Ready[\s\S]*quorum needs 2[\s\S]*checked through s1/);
    expect(s1.argv.every((a) => a.join(" ") === "k3s kubectl get nodes -o json" || a[0] === "curl")).toBe(true);
    expect(fs.existsSync(path.join(dir, "x"))).toBe(false);
  });

  test("an agent: no quorum check, no snapshot; a node not in the cluster: nothing to do", async () => {
    const cluster = { nodes: [server("s1"), { ...server("a1"), server: false, etcdMember: undefined }], members: [member("s1")], snapshot: Buffer.alloc(0) };
    const s1 = new FakeServer("deploy@s1", cluster);
    const route = { name: "s1", hostname: "s1", shell: new RootShell(s1) };
    const a = await leaveCluster({ servers: [route] }, { ...spec, node: "a1", hostname: "a1", role: "agent", snapshotDir: dir });
    expect(a).toMatchObject({ drained: true, nodeDeleted: true });
    expect(a.snapshot).toBeUndefined();
    expect(s1.argv.some((x) => x[1] === "etcd-snapshot")).toBe(false);
    const again = await leaveCluster({ servers: [route] }, { ...spec, node: "a1", hostname: "a1", role: "agent", snapshotDir: dir });
    expect(again.action).toBe("not-in-cluster");
  });

  test("no other server answers: refused, naming why each could not be used", async () => {
    await expect(
      leaveCluster(
        { servers: [{ name: "s3", hostname: "s3", shell: { unreachable: "no pinned host key for deploy@10.0.0.3:22 (set nodes[].ssh.hostKey)" } }] },
        { ...spec, snapshotDir: dir },
      ),
    ).rejects.toThrow(/no other server answered[\s\S]*s3: no pinned host key/);
  });
});

describe("NodeLeave resource decisions", () => {
  test("check: role, drain timeout and snapshot dir are validated", () => {
    const r = checkLeave({ node: "s1", hostname: "s1", role: "master", drainTimeoutSeconds: 0, snapshotDir: "rel" });
    expect(r.failures.map((f) => f.property)).toEqual(["role", "drainTimeoutSeconds", "snapshotDir"]);
  });
  test("diff: a new generation is an update (the leave), never a replace", () => {
    expect(diffLeave({ generation: "a" }, { generation: "b" })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    expect(diffLeave({ generation: "a" }, { generation: "a" }).changes).toBe(false);
  });
});

describe("refresh drift of a k3s node", () => {
  test("a refresh that recorded not Ready / not a member makes the next diff an update that rejoins; Ready does not", () => {
    const same = { hostname: "a1", role: "agent", token: "t".repeat(20), generation: "g" };
    const drift = { ...same, readiness: "not Ready: Ready=Unknown (NodeStatusUnknown)" };
    expect(diffNode(drift, same)).toMatchObject({ changes: true, replaces: [] });
    expect(needsRejoin(drift, same)).toBe(true);
    expect(needsRejoin({ ...same, readiness: "not an etcd member" }, same)).toBe(true);
    expect(diffNode({ ...same, readiness: "Ready" }, same)).toMatchObject({ changes: false, replaces: [] });
    expect(needsRejoin({ ...same, readiness: "Ready" }, same)).toBe(false);
    expect(diffNode(same, same).changes).toBe(false);
  });
});

describe("engine watchdog", () => {
  test("a provider whose parent is killed stops itself and its child processes", async () => {
    // parent (stands for the engine) → provider (watchEngine forced) → child (a long sleep)
    const lib = path.resolve(__dirname, "../../lib/engine-watch.ts");
    const provider = `require(${JSON.stringify(path.resolve(__dirname, "../../lab/ts-require.js"))}); const w = require(${JSON.stringify(lib)});
      const c = require("child_process").spawn("sleep", ["60"], { stdio: "ignore" }); process.stdout.write(process.pid + " " + c.pid + "\\n");
      w.watchEngine({ force: true, everyMs: 100 }); setInterval(() => {}, 1000);`;
    const engine = spawn(
      process.execPath,
      [
        "-e",
        `const p = require("child_process").spawn(process.execPath, ["-e", ${JSON.stringify(provider)}], { stdio: ["ignore", "inherit", "inherit"] }); setInterval(() => {}, 1000);`,
      ],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const line = await new Promise<string>((res) => engine.stdout!.once("data", (d) => res(String(d))));
    const [providerPid, childPid] = line.trim().split(" ").map(Number);
    expect(childPids(providerPid)).toContain(childPid);
    engine.kill("SIGKILL");
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
      } catch {
        return false;
      }
    };
    const t0 = Date.now();
    while ((alive(providerPid) || alive(childPid)) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 100));
    expect([alive(providerPid), alive(childPid)]).toEqual([false, false]);
  });
});
