"use strict";
/**
 * A small YAML reader/writer for the k3s stand-in (no npm dependencies: the lab nodes run this with
 * whatever node is on PATH).
 *
 * Contract:
 * - parse(text, what) reads the block-YAML subset k3s configs and kubeconfigs use: maps, block sequences
 *   (also of maps), flow sequences / maps on one line, plain, 'single' and "double" quoted scalars,
 *   `|` / `>` block scalars, comments, a leading `---`. Scalars follow the YAML 1.2 core schema
 *   (true/false, null/~, integers, floats, everything else a string), like the `yaml` library.
 * - Anything outside that subset (anchors, tags, multi-line plain scalars, several documents) throws an
 *   Error naming `what` and the line, never silently misreads.
 * - stringify(value) writes plain JSON-like data as block YAML that parse() and the `yaml` library read
 *   back to the same value.
 */

function fail(what, lineNo, msg) {
  throw new Error(`yaml: ${what}: line ${lineNo}: ${msg}`);
}

/** Remove a trailing comment (a `#` at the start or after whitespace, outside quotes). */
function stripComment(s) {
  let q = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (q === '"' && c === "\\") i++;
      else if (c === q) q = null;
    } else if (c === '"' || c === "'") {
      // a quote only opens a quoted scalar at a token start
      if (i === 0 || /[\s:\[\{,\-]/.test(s[i - 1])) q = c;
    } else if (c === "#" && (i === 0 || /\s/.test(s[i - 1]))) return s.slice(0, i).replace(/\s+$/, "");
  }
  return s.replace(/\s+$/, "");
}

function scalar(raw, what, lineNo) {
  const s = raw.trim();
  if (s === "") return null;
  if (s[0] === '"') {
    if (s.length < 2 || s[s.length - 1] !== '"') fail(what, lineNo, `unterminated double-quoted string ${s}`);
    try {
      return JSON.parse(s.replace(/\\\//g, "/").replace(/\t/g, "\\t"));
    } catch {
      fail(what, lineNo, `bad escape in ${s}`);
    }
  }
  if (s[0] === "'") {
    if (s.length < 2 || s[s.length - 1] !== "'") fail(what, lineNo, `unterminated single-quoted string ${s}`);
    return s.slice(1, -1).replace(/''/g, "'");
  }
  if (s[0] === "[" || s[0] === "{") return flow(s, what, lineNo);
  if (/^[&*!]/.test(s)) fail(what, lineNo, `anchors, aliases and tags are not supported (${s})`);
  if (/^(null|Null|NULL|~)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?[0-9]+$/.test(s)) return parseInt(s, 10);
  if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return parseFloat(s);
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s[0] === "-" ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

/** One-line flow collection: [a, "b", {c: d}] or {a: b}. */
function flow(s, what, lineNo) {
  let i = 0;
  const ws = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  const item = () => {
    ws();
    if (s[i] === "[") {
      i++;
      const out = [];
      ws();
      if (s[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(item());
        ws();
        if (s[i] === ",") {
          i++;
          continue;
        }
        if (s[i] === "]") {
          i++;
          return out;
        }
        fail(what, lineNo, `bad flow sequence ${s}`);
      }
    }
    if (s[i] === "{") {
      i++;
      const out = {};
      ws();
      if (s[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        const k = token(true);
        ws();
        if (s[i] !== ":") fail(what, lineNo, `bad flow map ${s}`);
        i++;
        out[String(k)] = item();
        ws();
        if (s[i] === ",") {
          i++;
          continue;
        }
        if (s[i] === "}") {
          i++;
          return out;
        }
        fail(what, lineNo, `bad flow map ${s}`);
      }
    }
    return token(false);
  };
  const token = (isKey) => {
    ws();
    const start = i;
    if (s[i] === '"' || s[i] === "'") {
      const q = s[i++];
      while (i < s.length && s[i] !== q) {
        if (q === '"' && s[i] === "\\") i++;
        i++;
      }
      if (s[i] === q && q === "'" && s[i + 1] === "'") fail(what, lineNo, "'' inside flow strings is not supported");
      i++;
      return scalar(s.slice(start, i), what, lineNo);
    }
    while (i < s.length && !/[,\]\}]/.test(s[i]) && !(isKey && s[i] === ":")) i++;
    return scalar(s.slice(start, i), what, lineNo);
  };
  const v = item();
  ws();
  if (i !== s.length) fail(what, lineNo, `trailing characters after flow collection: ${s}`);
  return v;
}

/** Split "key: value" (outside quotes); undefined when the line is not a map entry. */
function splitKey(content) {
  let q = null;
  for (let i = 0; i < content.length; i++) {
    const c = content[i];
    if (q) {
      if (q === '"' && c === "\\") i++;
      else if (c === q) q = null;
      continue;
    }
    if ((c === '"' || c === "'") && i === 0) {
      q = c;
      continue;
    }
    if (c === ":" && (i === content.length - 1 || content[i + 1] === " " || content[i + 1] === "\t")) {
      return [content.slice(0, i).trim(), content.slice(i + 1).trim()];
    }
    if (i === 0 && (c === "[" || c === "{")) return undefined;
  }
  return undefined;
}

function parse(text, what = "document") {
  const raw = String(text).replace(/^\uFEFF/, "").split(/\r?\n/);
  const lines = [];
  let sawDoc = false;
  for (let n = 0; n < raw.length; n++) {
    const l = raw[n];
    if (/\t/.test(l.match(/^\s*/)[0])) fail(what, n + 1, "tabs are not allowed in indentation");
    if (/^---(\s|$)/.test(l)) {
      if (lines.length || sawDoc) fail(what, n + 1, "only one YAML document is supported");
      sawDoc = true;
      if (stripComment(l.slice(3)).trim() !== "") fail(what, n + 1, "content after --- is not supported");
      continue;
    }
    if (/^\.\.\.(\s|$)/.test(l)) break;
    const indent = l.match(/^ */)[0].length;
    lines.push({ n: n + 1, indent, raw: l, text: stripComment(l.slice(indent)) });
  }
  let i = 0;
  const significant = () => {
    while (i < lines.length && lines[i].text === "") i++;
    return i < lines.length;
  };

  function blockScalar(header, parentIndent, lineNo) {
    const m = /^([|>])([-+]?)$/.exec(header);
    if (!m) fail(what, lineNo, `unsupported block scalar header ${header}`);
    const body = [];
    let ind = -1;
    while (i < lines.length) {
      const L = lines[i];
      if (L.raw.trim() === "") {
        body.push("");
        i++;
        continue;
      }
      if (L.indent <= parentIndent) break;
      if (ind < 0) ind = L.indent;
      if (L.indent < ind) break;
      body.push(L.raw.slice(ind));
      i++;
    }
    while (body.length && body[body.length - 1] === "" && m[2] !== "+") body.pop();
    let s = m[1] === "|" ? body.join("\n") : body.join("\n").replace(/([^\n])\n(?=[^\n])/g, "$1 ");
    if (m[2] !== "-" && body.length) s += "\n";
    return s;
  }

  function value(rest, indent, lineNo) {
    // the value of `key:` or `- ` whose remaining text is `rest`
    if (rest === "") {
      if (!significant()) return null;
      const L = lines[i];
      if (L.indent > indent) return block(L.indent);
      if (L.indent === indent && /^-( |$)/.test(L.text)) return block(L.indent);
      return null;
    }
    if (rest[0] === "|" || rest[0] === ">") return blockScalar(rest, indent, lineNo);
    if (significant() && lines[i].indent > indent) fail(what, lines[i].n, "multi-line plain scalars are not supported; quote the value");
    return scalar(rest, what, lineNo);
  }

  function block(indent) {
    significant();
    const first = lines[i];
    if (/^-( |$)/.test(first.text)) {
      const out = [];
      while (significant() && lines[i].indent === indent && /^-( |$)/.test(lines[i].text)) {
        const L = lines[i];
        const rest = L.text.slice(1).trimStart();
        const restIndent = indent + (L.text.length - rest.length);
        if (rest !== "" && (splitKey(rest) || /^-( |$)/.test(rest))) {
          // "- key: v" : a map (or nested sequence) starting on this line at the item's content column
          lines[i] = { n: L.n, indent: restIndent, raw: L.raw, text: rest };
          out.push(block(restIndent));
        } else {
          i++;
          out.push(value(rest, indent, L.n));
        }
      }
      if (significant() && lines[i].indent > indent) fail(what, lines[i].n, "bad indentation");
      return out;
    }
    const out = {};
    while (significant() && lines[i].indent === indent) {
      const L = lines[i];
      if (/^-( |$)/.test(L.text)) fail(what, L.n, "a sequence item where a map key was expected");
      const kv = splitKey(L.text);
      if (!kv) fail(what, L.n, `expected "key: value", got ${JSON.stringify(L.text)}`);
      const key = String(scalar(kv[0], what, L.n));
      if (Object.prototype.hasOwnProperty.call(out, key)) fail(what, L.n, `duplicate key ${key}`);
      i++;
      out[key] = value(kv[1], indent, L.n);
    }
    if (significant() && lines[i].indent > indent) fail(what, lines[i].n, "bad indentation");
    return out;
  }

  if (!significant()) return null;
  const top = lines[i];
  if (!splitKey(top.text) && !/^-( |$)/.test(top.text)) {
    const v = scalar(top.text, what, top.n);
    i++;
    if (significant()) fail(what, lines[i].n, "unexpected content after a scalar document");
    return v;
  }
  const v = block(top.indent);
  if (significant()) fail(what, lines[i].n, "unexpected content (check the indentation)");
  return v;
}

function quoteIfNeeded(s) {
  if (s === "") return '""';
  if (
    /^[\s]|[\s]$/.test(s) ||
    /^[-?:,\[\]{}#&*!|>'"%@`~]/.test(s) ||
    /: |:$| #/.test(s) ||
    /[\n\r\t\\"]/.test(s) ||
    scalar(s, "", 0) !== s
  ) {
    return JSON.stringify(s);
  }
  return s;
}

function scalarOut(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  return quoteIfNeeded(String(v));
}

function stringify(value, indent = 0) {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]\n";
    let out = "";
    for (const v of value) {
      if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
        const inner = stringify(v, indent + 2);
        out += pad + "- " + inner.slice(indent + 2);
      } else if (Array.isArray(v) && v.length) {
        out += pad + "-\n" + stringify(v, indent + 2);
      } else out += pad + "- " + (v && typeof v === "object" ? (Array.isArray(v) ? "[]" : "{}") : scalarOut(v)) + "\n";
    }
    return out;
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return "{}\n";
    let out = "";
    for (const k of keys) {
      const v = value[k];
      if (v && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
        out += pad + quoteIfNeeded(k) + ":\n" + stringify(v, Array.isArray(v) ? indent : indent + 2);
      } else if (v && typeof v === "object") out += pad + quoteIfNeeded(k) + ": " + (Array.isArray(v) ? "[]" : "{}") + "\n";
      else out += pad + quoteIfNeeded(k) + ": " + scalarOut(v) + "\n";
    }
    return out;
  }
  return scalarOut(value) + "\n";
}

module.exports = { parse, stringify };
