/**
 * K3sCluster wiring under Pulumi mocks: the token, the dependsOn chain (servers one after another,
 * agents after the last server, each after its delivery), the kubeconfig as a secret, the Kubernetes
 * provider built from it, and the workload resources (namespaces, manifests, Helm releases) on it.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { parseAllDocuments } from "yaml";
import { parseFleet } from "../../lib/model/parse";
import { validRaw } from "../model/fixtures";

interface Reg {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  provider?: string;
  custom?: boolean;
}
const registered: Reg[] = [];
/** How a secret value looks on the wire (pulumi/sdk/nodejs runtime/rpc.ts specialSigKey / specialSecretSig). */
const SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const FAKE_KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n";
let tmp: string;

async function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-mock-"));
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider, custom: args.custom });
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type === "random:index/randomPassword:RandomPassword") state.result = "T".repeat(48);
        if (args.type.endsWith(":K3sServer") || args.type.endsWith(":K3sAgent")) state.joinId = `join-${args.name}`;
        if (args.type.endsWith(":K3sKubeconfig")) state.kubeconfig = FAKE_KUBECONFIG;
        return { id: `${args.name}-id`, state };
      },
      call: (args) => {
        if (args.token === "kubernetes:yaml:decode") return { result: parseAllDocuments(args.inputs.text).map((d) => d.toJS()) };
        return args.inputs;
      },
    },
    "isar-k3s",
    "test",
  );
});

/** Stands for a delivery resource (TuringPiFlash / SwupdateDelivery) with its running image id. */
class Delivered extends pulumi.CustomResource {
  declare readonly runningImageId: pulumi.Output<string>;
  constructor(name: string, imageId: string) {
    super("test:delivery:Delivered", name, { runningImageId: imageId });
  }
}

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function fleet() {
  const raw = validRaw();
  raw.nodes.push({
    name: "agent2",
    role: "agent",
    hardware: "x86-controller",
    address: "10.0.0.30",
    delivery: { method: "swupdate" },
    ssh: { hostKey: raw.authorizedKeys[0] },
    postJoinCommand: "hostname > /var/lib/post-join",
  });
  raw.workloads = {
    namespaces: ["vendor-apps", "longhorn-system"],
    manifests: ["apps.yaml"],
    helmCharts: [
      {
        name: "longhorn",
        chart: "longhorn",
        repo: "https://charts.longhorn.io",
        version: "1.7.2",
        namespace: "longhorn-system",
        values: { defaultSettings: { defaultReplicaCount: 2 } },
      },
      { name: "local", chart: "./charts/local", namespace: "vendor-apps", values: {} },
    ],
  };
  return parseFleet(raw);
}

test("token, join chain, kubeconfig secret, Kubernetes provider and workloads", async () => {
  fs.writeFileSync(
    path.join(tmp, "apps.yaml"),
    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: vendor-web, namespace: vendor-apps}\nspec: {selector: {matchLabels: {app: w}}, template: {metadata: {labels: {app: w}}, spec: {containers: [{name: w, image: nginx}]}}}\n" +
      "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendor-settings, namespace: vendor-apps}\ndata: {a: b}\n",
  );
  const { K3sCluster } = await import("../../components/cluster");
  const f = fleet();
  // per-node "delivered" resources the joins must wait for
  const delivered: Record<string, Delivered> = {};
  for (const n of f.nodes) delivered[n.name] = new Delivered(`deliver-${n.name}`, `img-${n.name}`);

  const deps = new Map<string, string[]>();
  const names = new Map<unknown, string>();
  const created: pulumi.Resource[] = [];
  const cluster = new K3sCluster(
    "lab",
    {
      fleet: f,
      projectDir: tmp,
      sshPrivateKey: pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nMOCK\n-----END OPENSSH PRIVATE KEY-----\n"),
      nodes: Object.fromEntries(f.nodes.map((n) => [n.name, { delivered: delivered[n.name], generation: delivered[n.name].runningImageId }])),
    },
    {
      transformations: [
        (a) => {
          names.set(a.resource, a.name);
          created.push(a.resource);
          const d = a.opts.dependsOn;
          deps.set(
            a.name,
            (Array.isArray(d) ? d : d ? [d] : []).map((r) => names.get(r) ?? (r as unknown as { __name?: string }).__name ?? "?"),
          );
          return undefined;
        },
      ],
    },
  );
  for (const [n, r] of Object.entries(delivered)) names.set(r, `deliver-${n}`);

  const kubeconfig = await value(cluster.kubeconfig);
  expect(kubeconfig).toBe(FAKE_KUBECONFIG);
  expect(await pulumi.isSecret(cluster.kubeconfig)).toBe(true);
  await value(pulumi.all(Object.values(cluster.workloads.manifests).map((m) => m.resources)));
  // every resource built so far (the manifests' children included) is registered once its URN is known
  await value(pulumi.all(created.map((r) => r.urn)));

  // token: RandomPassword, 48 chars, no specials; a secret everywhere it goes
  const pw = registered.filter((r) => r.type === "random:index/randomPassword:RandomPassword");
  expect(pw).toHaveLength(1);
  expect(pw[0].inputs).toMatchObject({ length: 48, special: false });
  const srv1 = cluster.nodes.srv1 as unknown as { token: pulumi.Output<string>; privateKey: pulumi.Output<string> };
  expect(await pulumi.isSecret(srv1.token)).toBe(true);
  expect(await pulumi.isSecret(srv1.privateKey)).toBe(true);

  // node resources: types, first server with cluster-init flag, rendered configs without the token
  const nodeRegs = registered.filter((r) => /:K3s(Server|Agent)$/.test(r.type));
  expect(nodeRegs.map((r) => [r.name, r.type.split(":").pop(), r.inputs.firstServer]).sort()).toEqual([
    ["lab-agent2", "K3sAgent", false],
    ["lab-jetson1", "K3sAgent", false],
    ["lab-srv1", "K3sServer", true],
    ["lab-srv2", "K3sServer", false],
    ["lab-srv3", "K3sServer", false],
  ]);
  for (const r of nodeRegs) {
    // the engine receives the token (and the SSH key) as secret values
    expect(r.inputs.token).toEqual({ [SIG]: SECRET_SIG, value: "T".repeat(48) });
    expect(r.inputs.privateKey).toMatchObject({ [SIG]: SECRET_SIG });
    expect(String(r.inputs.config)).not.toContain("T".repeat(48));
    expect(String(r.inputs.config)).toContain("token-file: /etc/rancher/k3s/token");
    expect(r.inputs.generation).toBe(`img-${r.name.slice(4)}`);
    expect(r.inputs.apiSsh).toMatchObject({ address: "10.0.0.11", port: 22, user: "deploy" });
    expect(r.inputs.cluster).toBe(r.name === "lab-srv1" ? "" : "join-lab-srv1");
  }
  const jetson = nodeRegs.find((r) => r.name === "lab-jetson1")!;
  expect(jetson.inputs.labels).toMatchObject({ "example.com/zone": "line-1", "nvidia.com/gpu": "true" });
  expect(jetson.inputs.taints).toEqual([{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }]);
  expect(jetson.inputs.joinTimeoutSeconds).toBe(f.k3s.joinTimeoutSeconds);
  expect(jetson.inputs.drainTimeoutSeconds).toBe(f.k3s.drainTimeoutSeconds);

  // dependsOn: first server after its delivery; each server after the previous; agents after the last server
  expect(deps.get("lab-srv1")).toEqual(["deliver-srv1"]);
  expect(deps.get("lab-srv2")).toEqual(["lab-srv1", "deliver-srv2"]);
  expect(deps.get("lab-srv3")).toEqual(["lab-srv2", "deliver-srv3"]);
  expect(deps.get("lab-jetson1")).toEqual(["lab-srv3", "deliver-jetson1"]);
  expect(deps.get("lab-agent2")).toEqual(["lab-srv3", "deliver-agent2"]);
  expect(deps.get("lab-kubeconfig")!.sort()).toEqual(["lab-agent2", "lab-jetson1", "lab-srv1", "lab-srv2", "lab-srv3"]);
  expect(cluster.joinOrder).toEqual({ servers: ["srv1", "srv2", "srv3"], agents: ["jetson1", "agent2"] });

  // kubeconfig resource: first server's address, the stack's cluster name
  const kc = registered.find((r) => r.type.endsWith(":K3sKubeconfig"))!;
  expect(kc.inputs).toMatchObject({ server: "https://10.0.0.11:6443", clusterName: "test" });
  expect((kc.inputs.members as string[]).sort()).toEqual(["join-lab-agent2", "join-lab-jetson1", "join-lab-srv1", "join-lab-srv2", "join-lab-srv3"]);

  // Kubernetes provider from the kubeconfig; every workload uses it
  const prov = registered.filter((r) => r.type === "pulumi:providers:kubernetes");
  expect(prov.map((p) => p.name)).toEqual(["lab-k8s"]);
  expect(prov[0].inputs.kubeconfig).toEqual({ [SIG]: SECRET_SIG, value: FAKE_KUBECONFIG });
  expect(registered.filter((r) => r.type === "kubernetes:yaml:ConfigFile").map((r) => r.name)).toEqual(["lab-manifest-0-apps"]);
  const k8sRes = registered.filter((r) => r.type.startsWith("kubernetes:") && r.custom);
  expect(k8sRes.map((r) => r.type).sort()).toEqual([
    "kubernetes:apps/v1:Deployment",
    "kubernetes:core/v1:ConfigMap",
    "kubernetes:core/v1:Namespace",
    "kubernetes:core/v1:Namespace",
    "kubernetes:helm.sh/v3:Release",
    "kubernetes:helm.sh/v3:Release",
  ]);
  for (const r of k8sRes) expect(r.provider).toMatch(/::lab-k8s::lab-k8s-id$/);
  expect(
    k8sRes
      .filter((r) => r.type.endsWith(":Namespace"))
      .map((r) => (r.inputs.metadata as { name: string }).name)
      .sort(),
  ).toEqual(["longhorn-system", "vendor-apps"]);
  const helm = k8sRes.find((r) => r.type.endsWith(":Release") && r.inputs.name === "longhorn")!;
  expect(helm.inputs).toMatchObject({
    name: "longhorn",
    chart: "longhorn",
    version: "1.7.2",
    namespace: "longhorn-system",
    createNamespace: false,
    repositoryOpts: { repo: "https://charts.longhorn.io" },
  });
  expect(helm.inputs.values).toEqual({ defaultSettings: { defaultReplicaCount: 2 } });
  expect(deps.get("lab-helm-longhorn")!.sort()).toEqual(["lab-ns-longhorn-system", "lab-ns-vendor-apps"]);
  // a local chart directory is resolved against the project directory, no repository
  const local = k8sRes.find((r) => r.type.endsWith(":Release") && r.inputs.name === "local")!;
  expect(local.inputs).toMatchObject({ chart: path.join(tmp, "charts/local"), namespace: "vendor-apps", createNamespace: false });
  expect(local.inputs.repositoryOpts).toBeUndefined();

  // post-join command: @pulumi/command remote.Command on the node after its join, pinned host key,
  // the private key a secret, rerun when the node rejoins
  const post = registered.filter((r) => r.type === "command:remote:Command");
  expect(post.map((r) => r.name)).toEqual(["lab-agent2-post-join"]);
  expect(post[0].inputs.create).toBe("hostname > /var/lib/post-join");
  expect(post[0].inputs.triggers).toEqual(["join-lab-agent2"]);
  // the whole connection goes to the engine as one secret (it holds the private key)
  expect(post[0].inputs.connection).toMatchObject({
    [SIG]: SECRET_SIG,
    value: {
      host: "10.0.0.30",
      port: 22,
      user: "deploy",
      hostKey: f.nodes.find((n) => n.name === "agent2")!.ssh.hostKey,
      privateKey: expect.stringContaining("MOCK"),
    },
  });
  expect(deps.get("lab-agent2-post-join")).toEqual(["lab-agent2"]);
});

test("workloads: false registers no Kubernetes workloads; default SSH endpoints come from the fleet", async () => {
  registered.length = 0;
  const { K3sCluster } = await import("../../components/cluster");
  const f = fleet();
  const c = new K3sCluster("bare", { fleet: f, workloads: false, nodes: { srv1: { hostKey: pulumi.output("ssh-ed25519 LEARNED") } } });
  await value(c.kubeconfig);
  // the joins are registered once their URNs are known; no provider or workload was even constructed
  await value(pulumi.all(Object.values(c.nodes).map((r) => r.urn)));
  expect(c.provider).toBeUndefined();
  expect(c.workloads).toEqual({ namespaces: {}, manifests: {}, helmReleases: {} });
  expect(registered.filter((r) => r.type.startsWith("kubernetes:"))).toEqual([]);
  const srv3 = registered.find((r) => r.name === "bare-srv3")!;
  expect(srv3.inputs.ssh).toEqual({ address: "10.0.0.10", port: 22, user: "deploy", hostKey: f.nodes.find((n) => n.name === "srv3")!.ssh.hostKey });
  expect(srv3.inputs.generation).toBe("");
  expect(srv3.inputs.privateKey).toBeUndefined();
  // a host key learned by the delivery overrides the (absent) pin, for the node and as the API endpoint
  const srv1 = registered.find((r) => r.name === "bare-srv1")!;
  expect(srv1.inputs.ssh).toMatchObject({ address: "10.0.0.11", hostKey: "ssh-ed25519 LEARNED" });
  expect(srv3.inputs.apiSsh).toMatchObject({ address: "10.0.0.11", hostKey: "ssh-ed25519 LEARNED" });
});

test("the dev stack's workloads: namespace, manifest and the local Helm chart of the repository", async () => {
  registered.length = 0;
  const ROOT = path.resolve(__dirname, "..", "..");
  const { K3sCluster } = await import("../../components/cluster");
  const raw = validRaw();
  raw.workloads = {
    namespaces: ["isar-k3s-platform"],
    manifests: ["dev/workloads/platform.yaml"],
    helmCharts: [{ name: "isar-k3s-info", chart: "./dev/workloads/charts/isar-k3s-info", namespace: "isar-k3s-platform", values: { site: "dev-lab" } }],
  };
  const c = new K3sCluster("dev", { fleet: parseFleet(raw), projectDir: ROOT });
  await value(pulumi.all(Object.values(c.workloads.manifests).map((m) => m.resources)));
  await new Promise((r) => setTimeout(r, 200));
  const k8sRes = registered.filter((r) => r.type.startsWith("kubernetes:") && r.custom);
  const meta = (r: Reg) => r.inputs.metadata as { name: string; namespace?: string };
  expect(k8sRes.map((r) => `${r.type} ${meta(r)?.namespace ?? ""}/${meta(r)?.name ?? r.inputs.name}`).sort()).toEqual([
    "kubernetes:core/v1:ConfigMap isar-k3s-platform/platform-settings",
    "kubernetes:core/v1:Namespace /isar-k3s-platform",
    "kubernetes:core/v1:ServiceAccount isar-k3s-platform/platform-agent",
    "kubernetes:helm.sh/v3:Release /isar-k3s-info",
  ]);
  const rel = k8sRes.find((r) => r.type.endsWith(":Release"))!;
  expect(rel.inputs).toMatchObject({
    chart: path.join(ROOT, "dev/workloads/charts/isar-k3s-info"),
    namespace: "isar-k3s-platform",
    createNamespace: false,
    values: { site: "dev-lab" },
  });
  expect(fs.existsSync(path.join(rel.inputs.chart as string, "Chart.yaml"))).toBe(true);
});
