/**
 * Pure helpers over Kubernetes Node objects and the kubectl argv that changes them: readiness from
 * `kubectl get node -o json`, and the label / taint changes that turn one desired set into another.
 *
 * Guarantees: no I/O; every kubectl command is an argv array (label keys and values are validated here,
 * so a value can never be read by kubectl as a flag); label and taint diffs only touch keys this program
 * manages (labels k3s or other controllers add are never removed).
 */
import type { Taint } from "../model/types";
import { isRfc1123Subdomain } from "../model/checks";

export interface NodeCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface NodeView {
  name: string;
  ready: boolean;
  /** The Ready condition's reason/message, or a note that it is missing. */
  readyDetail: string;
  labels: Record<string, string>;
  taints: Taint[];
  unschedulable: boolean;
}

/** Parse `kubectl get node <name> -o json` output. Throws with the problem when it is not a Node. */
export function parseNodeJson(text: string): NodeView {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`kubectl get node -o json did not print JSON (${(e as Error).message}): first bytes ${JSON.stringify(text.slice(0, 80))}`, { cause: e });
  }
  const o = doc as {
    kind?: string;
    metadata?: { name?: string; labels?: Record<string, string> };
    spec?: { taints?: Taint[]; unschedulable?: boolean };
    status?: { conditions?: NodeCondition[] };
  };
  if (!o || typeof o !== "object" || o.kind !== "Node" || !o.metadata?.name) {
    throw new Error(`kubectl get node -o json printed something that is not a Node (kind ${JSON.stringify(o?.kind)})`);
  }
  const conds = Array.isArray(o.status?.conditions) ? o.status!.conditions! : [];
  const ready = conds.find((c) => c.type === "Ready");
  return {
    name: o.metadata.name,
    ready: ready?.status === "True",
    readyDetail: ready
      ? `Ready=${ready.status}${ready.reason ? ` (${ready.reason}${ready.message ? `: ${ready.message}` : ""})` : ""}`
      : "no Ready condition yet",
    labels: { ...(o.metadata.labels ?? {}) },
    taints: (o.spec?.taints ?? []).map((t) => ({ key: t.key, ...(t.value !== undefined && t.value !== "" ? { value: t.value } : {}), effect: t.effect })),
    unschedulable: o.spec?.unschedulable === true,
  };
}

/** True when kubectl's stderr says the object does not exist. */
export function isNotFound(stderr: string): boolean {
  return /\(NotFound\)|not found/i.test(stderr);
}

// Label syntax (k8s.io/apimachinery validation): optional DNS-subdomain prefix + "/" + name of at most
// 63 chars; values at most 63 chars of [A-Za-z0-9._-], alphanumeric at both ends, or empty.
const LABEL_NAME = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)$/;
const LABEL_VALUE = /^(([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?)$/;

export function checkLabelKey(key: string): string | undefined {
  const i = key.lastIndexOf("/");
  const prefix = i >= 0 ? key.slice(0, i) : undefined;
  const name = i >= 0 ? key.slice(i + 1) : key;
  if (prefix !== undefined && !isRfc1123Subdomain(prefix)) return `label key ${JSON.stringify(key)}: prefix must be a DNS subdomain`;
  if (!LABEL_NAME.test(name)) return `label key ${JSON.stringify(key)}: name must be 1-63 characters [A-Za-z0-9._-], alphanumeric at both ends`;
  return undefined;
}

export function checkLabelValue(key: string, value: string): string | undefined {
  return LABEL_VALUE.test(value)
    ? undefined
    : `label ${key}: value ${JSON.stringify(value)} must be at most 63 characters [A-Za-z0-9._-], alphanumeric at both ends`;
}

/** Problems with a desired label and taint set (empty when fine). */
export function checkLabelsAndTaints(labels: Record<string, string>, taints: Taint[]): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const a = checkLabelKey(k) ?? checkLabelValue(k, v);
    if (a) out.push(a);
  }
  const seen = new Set<string>();
  for (const t of taints) {
    const a = checkLabelKey(t.key) ?? (t.value !== undefined ? checkLabelValue(t.key, t.value) : undefined);
    if (a) out.push(a.replace(/^label/, "taint"));
    if (!["NoSchedule", "PreferNoSchedule", "NoExecute"].includes(t.effect))
      out.push(`taint ${t.key}: effect ${JSON.stringify(t.effect)} must be NoSchedule, PreferNoSchedule or NoExecute`);
    const id = `${t.key}:${t.effect}`;
    if (seen.has(id)) out.push(`taint ${id} is listed twice`);
    seen.add(id);
  }
  return out;
}

export interface LabelChange {
  /** Labels to set (new or changed value). */
  set: Record<string, string>;
  /** Label keys to remove (managed before, not wanted now). */
  remove: string[];
}

/**
 * Turn the labels the node has (`current`, as observed or as last applied) into `desired`, touching
 * only keys in `managed` (the keys this program set before) or in `desired`.
 */
export function labelChange(current: Record<string, string>, desired: Record<string, string>, managed: Iterable<string>): LabelChange {
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(desired)) if (current[k] !== v) set[k] = v;
  const remove = [...new Set(managed)].filter((k) => !(k in desired) && k in current).sort();
  return { set, remove };
}

export interface TaintChange {
  /** Taints to add or whose value changes (applied with --overwrite). */
  set: Taint[];
  /** Taints to remove (key and effect). */
  remove: Taint[];
}

function taintId(t: Taint): string {
  return `${t.key}:${t.effect}`;
}

/** Turn `current` taints into `desired`, touching only taints in `managed` (set before) or `desired`. */
export function taintChange(current: Taint[], desired: Taint[], managed: Taint[]): TaintChange {
  const cur = new Map(current.map((t) => [taintId(t), t]));
  const want = new Map(desired.map((t) => [taintId(t), t]));
  const set = desired.filter((t) => {
    const c = cur.get(taintId(t));
    return !c || (c.value ?? "") !== (t.value ?? "");
  });
  const remove = managed.filter((t) => !want.has(taintId(t)) && cur.has(taintId(t)));
  return { set, remove: [...new Map(remove.map((t) => [taintId(t), t])).values()] };
}

export function isEmptyChange(l: LabelChange, t: TaintChange): boolean {
  return Object.keys(l.set).length === 0 && l.remove.length === 0 && t.set.length === 0 && t.remove.length === 0;
}

/** kubectl argv (after the kubectl prefix) for a label change; empty when nothing to do. */
export function labelArgv(node: string, c: LabelChange): string[][] {
  const words = [
    ...Object.keys(c.set)
      .sort()
      .map((k) => `${k}=${c.set[k]}`),
    ...c.remove.map((k) => `${k}-`),
  ];
  return words.length ? [["label", "node", node, "--overwrite", ...words]] : [];
}

/** kubectl argv lists for a taint change: removals first, then additions (with --overwrite). */
export function taintArgv(node: string, c: TaintChange): string[][] {
  const out: string[][] = [];
  if (c.remove.length) out.push(["taint", "node", node, ...c.remove.map((t) => `${t.key}:${t.effect}-`)]);
  if (c.set.length)
    out.push(["taint", "node", node, "--overwrite", ...c.set.map((t) => (t.value === undefined ? `${t.key}:${t.effect}` : `${t.key}=${t.value}:${t.effect}`))]);
  return out;
}
