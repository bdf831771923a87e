/**
 * After an OS update of a node whose k3s state is persistent (a SWUpdate node: /var/lib/rancher and
 * /etc/rancher on its data partition, lib/render/persist.ts), k3s comes back as the same cluster member:
 * no Node delete, no etcd member change, no new registration (issue 15, item 4).
 *
 * The new root file system has k3s's binary but not the units the install script wrote on the old one,
 * so `resumeNode`:
 *   1. checks that the state survived: the node password (/etc/rancher/node/password) and k3s's data
 *      for the role (/var/lib/rancher/k3s/server/db/etcd for a server, /var/lib/rancher/k3s/agent for
 *      an agent). Without it the node would register as a stranger under the old name (the cluster
 *      refuses its new node password) or a server would start a second etcd member: refused, naming
 *      the node, what is missing and the fix (the data partition, or `nodes[].rejoin`);
 *   2. rewrites config.yaml, the token file and the join marker (the same join id), then re-runs the
 *      airgap install script, which writes the units and starts k3s on the existing state;
 *   3. waits until the Node is Ready as the first server sees it (joinTimeoutSeconds), then uncordons it
 *      (the leave before the update cordoned and drained it without deleting it).
 * The Node object and its UID, the node-password Secret and the etcd member are never touched.
 */
import { installArgv, K3sContext, K3sError, NodeJoinSpec, nodeDiagnostics, uncordon, waitReady, writeNodeFiles } from "./join";

/** What k3s must find on a node to come back as the same member (lab/k3s/BEHAVIOURS.md, "What k3s keeps where"). */
export function persistentStatePaths(role: "server" | "agent"): string[] {
  return ["/etc/rancher/node/password", role === "server" ? "/var/lib/rancher/k3s/server/db/etcd" : "/var/lib/rancher/k3s/agent"];
}

export async function resumeNode(ctx: K3sContext, spec: NodeJoinSpec, token: string, joinId: string, image: string): Promise<void> {
  const secrets = [token, ...(ctx.secrets ?? [])];
  const c: K3sContext = { ...ctx, secrets };
  const what = `k3s ${spec.role} ${spec.node}`;
  const deadline = Date.now() + spec.joinTimeoutSeconds * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  try {
    const missing: string[] = [];
    for (const p of persistentStatePaths(spec.role)) {
      const r = await c.node.run(["test", "-e", p], { timeoutMs: Math.min(30_000, left()) });
      if (r.code !== 0) missing.push(p);
    }
    if (missing.length) {
      throw new K3sError(
        `${what}: the node runs image ${image} but its k3s state is gone (${missing.join(", ")} missing), so it cannot come back as the same cluster member; nothing was changed in the cluster.` +
          `\nHow to fix: check that its persistent data partition (nodes[${spec.node}].delivery.dataDevice) is attached and mounted (findmnt /var/lib/rancher /etc/rancher), then run \`pulumi up\` again;` +
          ` if the state is lost for good, increase nodes[${spec.node}].rejoin to make it leave and rejoin the cluster.`,
        secrets,
      );
    }
    c.log?.(`${spec.hostname}: new OS image ${image}, k3s state kept on the data partition: restarting k3s as the same member (no rejoin)`);
    await writeNodeFiles(c.node, spec, token, joinId, Math.min(60_000, left()));
    await c.node.check(installArgv(spec), { timeoutMs: left() });
    await waitReady(c, spec.hostname, deadline, what, () => nodeDiagnostics(c.node, spec.role));
    await uncordon(c.api, spec.hostname, Math.min(60_000, left()));
    c.log?.(`${spec.hostname}: Ready again after the OS update`);
  } catch (e) {
    if (e instanceof K3sError) throw e;
    throw new K3sError(`${what}: ${(e as Error).message}`, secrets);
  }
}
