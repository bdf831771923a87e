/*
 * Require hook: lets Node run the lab's TypeScript sources directly (`node -r ./lab/ts-require.js
 * lab/cli.ts ...`), by transpiling each .ts file with the project's `typescript` (no type check: run
 * `npx tsc --noEmit -p .` for that). Used when the lab CLI is started from sources (tests, no bin/).
 * Transpiled output is cached by content hash in $TMPDIR/isar-k3s-ts-cache (typescript loads lazily,
 * only on a cache miss).
 */
"use strict";
const crypto = require("crypto");
const fs = require("fs");
const os = require("os");
const path = require("path");

const cacheDir = path.join(os.tmpdir(), "isar-k3s-ts-cache");
let ts;

require.extensions[".ts"] = function compileTs(module, filename) {
  const src = fs.readFileSync(filename, "utf8");
  const key = crypto.createHash("sha256").update(filename).update("\0").update(src).digest("hex");
  const cached = path.join(cacheDir, key + ".js");
  let out;
  try {
    out = fs.readFileSync(cached, "utf8");
  } catch {
    ts = ts || require("typescript");
    out = ts.transpileModule(src, {
      fileName: filename,
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true, inlineSourceMap: true },
    }).outputText;
    try {
      fs.mkdirSync(cacheDir, { recursive: true });
      const tmp = `${cached}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, out);
      fs.renameSync(tmp, cached);
    } catch {
      /* cache is optional */
    }
  }
  module._compile(out, filename);
};
