/**
 * Kubeconfig rewrite: k3s writes /etc/rancher/k3s/k3s.yaml with `server: https://127.0.0.1:6443` and
 * every name "default". We parse it as YAML and rewrite it structurally:
 * - the cluster's server URL becomes the first server's address,
 * - cluster, user and context are renamed to the stack's cluster name, current-context follows.
 *
 * Contract: certificate and key data pass through byte-for-byte (unlike a blind string replace of
 * "default" or "127.0.0.1", which corrupts base64 that happens to contain them). Input that is not a
 * kubeconfig with exactly one cluster, user and context is refused with an error that never includes
 * the input's text (it holds a client key).
 */
import { parse, stringify } from "yaml";

interface Named<T> {
  name: string;
  [k: string]: unknown;
  value?: T;
}

export interface KubeconfigRewrite {
  /** New server URL, e.g. https://192.168.1.10:6443. */
  server: string;
  /** New name for cluster, user and context. */
  name: string;
}

export function rewriteKubeconfig(text: string, rw: KubeconfigRewrite): string {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    // no `cause`: the parser's error quotes the document, which holds the client key
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`kubeconfig from the first server is not valid YAML (${(e as Error).name}); check /etc/rancher/k3s/k3s.yaml on the server`);
  }
  if (!doc || typeof doc !== "object") throw new Error("kubeconfig from the first server is empty or not a map");
  const cfg = doc as Record<string, unknown>;
  const clusters = one<Named<unknown>>(cfg, "clusters");
  const users = one<Named<unknown>>(cfg, "users");
  const contexts = one<Named<unknown>>(cfg, "contexts");
  const cluster = clusters.cluster as Record<string, unknown> | undefined;
  const context = contexts.context as Record<string, unknown> | undefined;
  if (!cluster || typeof cluster !== "object") throw new Error("kubeconfig: clusters[0].cluster is missing");
  if (!context || typeof context !== "object") throw new Error("kubeconfig: contexts[0].context is missing");
  if (context.cluster !== clusters.name || context.user !== users.name) {
    throw new Error("kubeconfig: contexts[0] does not refer to clusters[0] and users[0]; refusing to guess");
  }
  cluster.server = rw.server;
  clusters.name = rw.name;
  users.name = rw.name;
  contexts.name = rw.name;
  context.cluster = rw.name;
  context.user = rw.name;
  cfg["current-context"] = rw.name;
  return stringify(cfg, { lineWidth: 0 });
}

function one<T>(cfg: Record<string, unknown>, key: string): T & Record<string, unknown> {
  const list = cfg[key];
  if (!Array.isArray(list) || list.length !== 1 || typeof list[0] !== "object" || list[0] === null) {
    throw new Error(`kubeconfig: expected exactly one entry in ${key}, found ${Array.isArray(list) ? list.length : "none"}`);
  }
  return list[0] as T & Record<string, unknown>;
}
