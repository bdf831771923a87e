/**
 * The rollout's unit is delivery + join + Ready (issue 15 item 5), as the Fleet component wires it under
 * Pulumi mocks: each node's NodeLeave waits for the k3s joins of the units before it, its delivery waits
 * for the leave; the canary agent's join before the other agents' leaves; no cycle (every dependency
 * resolves, and the graph of who-waits-for-whom is acyclic). The leave reads the cluster through the
 * other servers (earlier ones with the host key their delivery learned, later ones with pinned keys only).
 */
import * as pulumi from "@pulumi/pulumi";
import * as os from "os";
import * as path from "path";
import { parseFleet } from "../../lib/model/parse";
import { validRaw } from "../model/fixtures";

const inputsOf = new Map<string, Record<string, unknown>>();

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        inputsOf.set(args.name, args.inputs);
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type.endsWith(":NodeImage")) {
          state.storePath = `/nix/store/${"0".repeat(32)}-${args.inputs.nodeName}`;
          state.outputFiles = ["rootfs.ext4", "boot/Image", "boot/bzImage", "disk.img"].map((p, i) => ({ path: p, size: 1, sha256: String(i + 1).repeat(64) }));
          state.imageId = `id-${args.inputs.nodeName}`;
        }
        if (args.type.endsWith(":IsarArtifact")) state.storePath = `/nix/store/${"1".repeat(32)}-${args.name}`;
        if (args.type.endsWith(":SwuBundle")) Object.assign(state, { path: `/tmp/${args.name}.swu`, sha256: "4".repeat(64), size: 10 });
        if (args.type.includes("TuringPiFlash") || args.inputs.kind === "tpi") state.nodeHostKey = `ssh-ed25519 AAAAlearned${args.inputs.nodeName}`;
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    "isar-k3s",
    "wiring",
  );
});

test("each delivery waits for its leave, each leave for the previous units' joins; canary first; acyclic", async () => {
  pulumi.runtime.setAllConfig({});
  const { Fleet } = await import("../../components/fleet");
  const fleet = parseFleet(validRaw());
  const deps = new Map<string, (string | Promise<string>)[]>();
  const names = new Map<unknown, string>();
  const f = new Fleet(
    "lab",
    {
      fleet,
      projectDir: path.resolve(__dirname, "../.."),
      outputDir: path.join(os.tmpdir(), "wiring-out"),
      secrets: { swupdateSigningKey: pulumi.secret("KEY") },
    },
    {
      transformations: [
        (a) => {
          names.set(a.resource, a.name);
          const d = a.opts.dependsOn;
          const list = (Array.isArray(d) ? d : d ? [d] : []) as unknown[];
          deps.set(
            a.name,
            list.map((r) => (r instanceof Promise ? r.then((x) => names.get(x) ?? "?") : (names.get(r) ?? "?"))),
          );
          return undefined;
        },
      ],
    },
  );
  await new Promise<void>((r) => f.kubeconfig.apply(() => r()));
  const resolved = new Map<string, string[]>();
  for (const [k, v] of deps) resolved.set(k, await Promise.all(v));

  const order = [f.plan.firstServer, ...f.plan.joiningServers].map((n) => n.name);
  const agents = f.plan.agents.map((n) => n.name);
  const delivery = (n: string) => [...resolved.keys()].find((k) => k === `lab-${n}-flash` || k === `lab-${n}-swupdate`)!;
  // servers: each leave waits for the previous server's join; each delivery for its own leave
  expect(resolved.get(`lab-${order[0]}-leave`)).toEqual([]);
  for (let i = 1; i < order.length; i++) expect(resolved.get(`lab-${order[i]}-leave`)).toContain(`lab-k3s-${order[i - 1]}`);
  for (const n of [...order, ...agents]) expect(resolved.get(delivery(n))).toContain(`lab-${n}-leave`);
  // canary agent after the last server's join; the other agents after the canary's join
  expect(resolved.get(`lab-${agents[0]}-leave`)).toContain(`lab-k3s-${order[order.length - 1]}`);
  for (const a of agents.slice(1)) expect(resolved.get(`lab-${a}-leave`)).toContain(`lab-k3s-${agents[0]}`);

  // acyclic: a depth-first walk over every dependency edge finds no back edge
  const state = new Map<string, number>();
  const visit = (n: string, stack: string[]): void => {
    if (state.get(n) === 2) return;
    if (state.get(n) === 1) throw new Error(`cycle: ${[...stack, n].join(" → ")}`);
    state.set(n, 1);
    for (const d of resolved.get(n) ?? []) visit(d, [...stack, n]);
    state.set(n, 2);
  };
  for (const n of resolved.keys()) visit(n, []);

  // the leave's routes: the other servers; earlier ones with their learned key, later ones pinned or none
  const leave1 = inputsOf.get(`lab-${order[1]}-leave`)!;
  const servers = leave1.servers as { name: string; ssh: { hostKey?: string } }[];
  expect(servers.map((s) => s.name).sort()).toEqual(order.filter((n) => n !== order[1]).sort());
  const first = fleet.nodes.find((n) => n.name === order[0])!;
  expect(servers.find((s) => s.name === order[0])!.ssh.hostKey).toBe(first.ssh.hostKey ?? `ssh-ed25519 AAAAlearned${order[0]}`);
  expect(leave1).toMatchObject({
    role: "server",
    deleteNode: true,
    generation: `id-${order[1]}`,
    snapshotDir: path.join(os.tmpdir(), "wiring-out", "etcd-snapshots"),
  });
  // a flash wipes k3s's state (the Node goes before it); a SWUpdate node keeps it (drained, never deleted)
  const deletes = Object.fromEntries(fleet.nodes.map((n) => [n.delivery.method, inputsOf.get(`lab-${n.name}-leave`)!.deleteNode]));
  expect(deletes).toEqual({ tpi: true, swupdate: false });
});
