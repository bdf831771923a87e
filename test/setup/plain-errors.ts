/**
 * Errors that reach jest from a test or hook are made plain before jest sees them.
 *
 * Jest runs suites in worker processes and sends each failure to the parent as JSON. An error from
 * `execFileSync`/`spawnSync` carries itself as its `error` property, so that send fails and jest reports
 * only "Converting circular structure to JSON", hiding the real cause (e.g. `spawnSync sgdisk ENOENT`
 * in a `beforeAll`). Every hook and test body registered through the globals is wrapped so that a
 * thrown error is replaced by a plain Error with the same message and stack, plus the child process's
 * code, status and the tail of its stderr when present. Callback-style functions (`done`) are left as
 * they are.
 */

type Fn = (...args: unknown[]) => unknown;

const TAIL = 2000;

function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = Buffer.isBuffer(v) ? v.toString("utf8") : typeof v === "string" ? v : undefined;
  return s === undefined ? undefined : s.length > TAIL ? `…${s.slice(-TAIL)}` : s;
}

export function plainError(e: unknown): unknown {
  // Not `instanceof Error`: errors made by Node's own modules come from another realm than the test's.
  if (typeof e !== "object" || e === null || typeof (e as { message?: unknown }).message !== "string") return e;
  try {
    JSON.stringify(e);
    return e;
  } catch {
    // not serializable: rebuilt below
  }
  const x = e as Error & { code?: unknown; status?: unknown; signal?: unknown; stderr?: unknown; stdout?: unknown };
  const extra: string[] = [];
  if (x.code !== undefined) extra.push(`code ${String(x.code)}`);
  if (typeof x.status === "number") extra.push(`exit status ${x.status}`);
  if (x.signal) extra.push(`signal ${String(x.signal)}`);
  const stderr = text(x.stderr);
  const out = new Error(extra.length ? `${x.message} (${extra.join(", ")})` : x.message);
  out.stack = `${out.message}\n${(x.stack ?? "").split("\n").slice(1).join("\n")}${stderr ? `\nstderr:\n${stderr}` : ""}`;
  return out;
}

function wrapBody(fn: unknown): unknown {
  if (typeof fn !== "function" || fn.length > 0) return fn;
  const body = fn as Fn;
  return async function (this: unknown) {
    try {
      return await body.call(this);
    } catch (e) {
      throw plainError(e);
    }
  };
}

const g = globalThis as unknown as Record<string, Fn & Record<string, unknown>>;
for (const hook of ["beforeAll", "beforeEach", "afterAll", "afterEach"]) {
  const original = g[hook];
  g[hook] = Object.assign((fn: unknown, timeout?: number) => original(wrapBody(fn), timeout), original);
}
for (const name of ["test", "it"]) {
  const original = g[name];
  const wrapped = (title: unknown, fn: unknown, timeout?: number) => original(title, wrapBody(fn), timeout);
  g[name] = Object.assign(wrapped, original);
}
