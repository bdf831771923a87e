/**
 * The lab's BMC daemon: the HTTPS API under `/api/bmc` that the Turing Pi 2 firmware's bmcd serves and
 * the real `tpi` CLI (crate tpi 1.0.7, `--features localhost`, see scripts/tpi.sh) calls. The hardware
 * behind it (slot power, eMMC files, serial consoles) is the lab's, reached through `BmcBoard`.
 *
 * What follows the firmware (bmcd v2.3.x, legacy API; facts read from its sources, no code taken):
 *   - every request is `?opt=get|set&type=...`; answers are `{"response":[{"result": ...}]}` (uart get:
 *     `{"response":[{"uart": "..."}]}`), errors the same shape with the message and an HTTP error status;
 *     a set without a value answers `"ok"`. Node numbers in the query are 0-based (`node=0` is slot 1),
 *     except power set, which takes `node1=1|0` .. `node4=1|0`.
 *   - power status: `[{"node1":"1","node2":"0",...}]` (strings). info (`type=other`): `[{api, version,
 *     buildtime, ip, mac, buildroot, build_version}]`, all strings.
 *   - flashing: `opt=set&type=flash&node=N` with `local&file=<path on the BMC>` (no checksum on this path:
 *     the firmware takes none) or with `file=<name>&length=<bytes>[&sha256=<hex>]` and then a multipart
 *     `POST /api/bmc/upload/<handle>` carrying the bytes; `skip_crc` turns off the read-back check.
 *     The answer is `{"handle": <u32>}`. One transfer service per BMC: a new request replaces (cancels) the
 *     running one. Status `opt=get&type=flash`: `"Ready"`, `{"Transferring":{"id","process_name","size",
 *     "cancelled","bytes_written"}}`, `{"Done":[{"secs","nanos"}, size]}`, `{"Error":"<text>"}`.
 *     The worker holds the module in flash mode (powered off), writes, then (unless skip_crc) reads back
 *     and compares checksums (`bytes_written` counts again from 0 meanwhile), and leaves the slot off.
 *     `.xz` files are decompressed. Texts: `sha256 checksum failed. Expected: <hex>, got: <hex>`,
 *     `crc error. expected <n>, calculated <n>`, an eMMC write error is the OS error text
 *     (`Input/output error (os error 5)`), `Send timeout` when no upload arrives within 10 s, `cancelled
 *     by user` after `GET /api/bmc/upload/<h>/cancel`, `missing <size>` for a short upload, and a local
 *     file that cannot be opened answers 500 `Failed to <path>: No such file or directory (os error 2)`.
 *   - requests from a loopback address need no login (the firmware's rule; every client of a lab is on
 *     loopback, so the lab never asks for one).
 * What is simulated: the eMMC is a file written at `flashRateBytesPerSec`; the crc numbers are derived
 * from a sha256 of the bytes (not CRC-64); faults come from the board (`flashFault`).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as http from "http";
import { spawn } from "child_process";
import { PassThrough, Readable } from "stream";

export type BmcFlashFault = { kind: "emmc-write-error"; message?: string } | { kind: "crc-mismatch" };

/** The simulated board behind the API. */
export interface BmcBoard {
  name: string;
  address: string;
  /** False while the BMC is down (its connections are dropped unanswered). */
  reachable(): boolean;
  slotPowered(slot: number): boolean;
  setSlotPower(slot: number, on: boolean): Promise<void>;
  resetSlot(slot: number): Promise<void>;
  /** Console output since the last read (and clear it). */
  uartRead(slot: number): string;
  uartWrite(slot: number, line: string): Promise<void>;
  /** This machine's path of a file as the BMC's own processes see it. */
  bmcPath(p: string): string;
  /** The slot's eMMC (a file on this machine). */
  emmcFile(slot: number): string;
  flashFault(slot: number): BmcFlashFault | undefined;
  /** The eMMC of `slot` was (re)written, successfully or not. */
  flashWritten(slot: number, ok: boolean): Promise<void>;
  flashRateBytesPerSec: number;
  rebootBmc(): void;
  log(msg: string): void;
}

export const BMCD_VERSION = "2.3.4";
const API_VERSION = "1.1";
const SEND_TIMEOUT_MS = 10_000;

interface TransferCtx {
  id: number;
  processName: string;
  size: number;
  bytesWritten: number;
  abort: AbortController;
  /** Streamed transfers: the bytes the upload request feeds in, until taken. */
  upload?: PassThrough;
  uploadTaken: boolean;
  slot: number;
}

type StreamingState = { s: "Ready" } | { s: "Transferring"; ctx: TransferCtx } | { s: "Done"; ms: number; size: number } | { s: "Error"; msg: string };

class ApiError extends Error {
  constructor(
    readonly status: number,
    msg: string,
  ) {
    super(msg);
  }
}

function stateJson(st: StreamingState): unknown {
  switch (st.s) {
    case "Ready":
      return "Ready";
    case "Transferring":
      return {
        Transferring: {
          id: st.ctx.id,
          process_name: st.ctx.processName,
          size: st.ctx.size,
          cancelled: st.ctx.abort.signal.aborted,
          bytes_written: st.ctx.bytesWritten,
        },
      };
    case "Done":
      return { Done: [{ secs: Math.floor(st.ms / 1000), nanos: (st.ms % 1000) * 1e6 }, st.size] };
    case "Error":
      return { Error: st.msg };
  }
}

/** Sizes as the firmware prints them (decimal units, two decimals). */
export function decimalSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(2)} ${units[i]}`;
}

function nodeParam(q: URLSearchParams): number {
  const v = q.get("node");
  if (v === null) throw new ApiError(400, "Missing `node` parameter");
  if (!/^-?\d+$/.test(v)) throw new ApiError(400, "Parameter `node` is not a number");
  const n = Number(v);
  if (n < 0 || n > 3) throw new ApiError(400, "Parameter `node` is out of range 0..3 of node IDs");
  return n + 1;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A self-signed certificate for the daemon (the firmware makes one at first start too). */
export async function ensureCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/bmcd_cert.pem`;
  const key = `${dir}/bmcd_key.pem`;
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    await new Promise<void>((resolve, reject) => {
      const p = spawn(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-keyout",
          key,
          "-out",
          cert,
          "-days",
          "3650",
          "-subj",
          "/CN=turingpi.local",
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let err = "";
      p.stderr.on("data", (c) => (err += c));
      p.on("error", reject);
      p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`openssl could not make the BMC's certificate: ${err.trim()}`))));
    });
  }
  return { cert: fs.readFileSync(cert, "utf8"), key: fs.readFileSync(key, "utf8") };
}

export class Bmcd {
  private state: StreamingState = { s: "Ready" };
  private server?: https.Server;

  constructor(private readonly board: BmcBoard) {}

  async listen(port: number, tls: { cert: string; key: string }): Promise<void> {
    const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      void this.handle(req, res).catch((e: Error) => {
        const status = e instanceof ApiError ? e.status : 500;
        if (!res.headersSent) this.reply(res, status, e.message);
        else res.end();
      });
    });
    server.requestTimeout = 0;
    server.on("tlsClientError", () => undefined);
    await new Promise<void>((resolve, reject) => server.listen({ host: this.board.address, port, exclusive: true }, resolve).once("error", reject));
    this.server = server;
  }

  async close(): Promise<void> {
    this.cancelRunning();
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** The current flash status, as `opt=get&type=flash` answers it. */
  flashStatus(): unknown {
    return stateJson(this.state);
  }

  private reply(res: http.ServerResponse, status: number, result: unknown, key = "result"): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ response: [{ [key]: result }] }));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (!this.board.reachable()) {
      req.socket.destroy(); // a BMC that is down does not answer
      return;
    }
    const url = new URL(req.url ?? "/", "https://bmc");
    const q = url.searchParams;
    const p = url.pathname.replace(/\/+$/, "");
    const up = /^\/api\/bmc\/upload\/(\d+)(\/cancel)?$/.exec(p);
    if (up && req.method === "POST" && !up[2]) return this.upload(Number(up[1]), req, res);
    if (up && req.method === "GET" && up[2]) {
      req.resume();
      this.cancelAll();
      res.writeHead(200);
      return void res.end();
    }
    if (p !== "/api/bmc") {
      req.resume();
      res.writeHead(404);
      return void res.end();
    }
    req.resume();
    const opt = q.get("opt");
    const type = q.get("type");
    if ((type === "flash" || type === "firmware") && opt === "get" && req.method === "GET") {
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      return void res.end(JSON.stringify(stateJson(this.state)));
    }
    if (type === "flash" && opt === "set" && req.method === "GET") {
      const handle = await this.requestFlash(q);
      res.writeHead(200, { "content-type": "text/plain; charset=utf-8" });
      return void res.end(JSON.stringify({ handle }));
    }
    if (opt !== "set" && opt !== "get") return this.reply(res, 400, "Missing `opt` parameter");
    if (type === null) return this.reply(res, 400, "Missing `type` parameter");
    const set = opt === "set";
    const ok = () => this.reply(res, 200, "ok");
    switch (`${type}/${set ? "set" : "get"}`) {
      case "power/get": {
        const r: Record<string, string> = {};
        for (const s of [1, 2, 3, 4]) r[`node${s}`] = this.board.slotPowered(s) ? "1" : "0";
        return this.reply(res, 200, [r]);
      }
      case "power/set": {
        const changes: [number, boolean][] = [];
        for (const s of [1, 2, 3, 4]) {
          const v = q.get(`node${s}`);
          if (v === null) continue;
          if (v !== "0" && v !== "1") return this.reply(res, 400, `Invalid value \`${v}\` for parameter \`node${s}\``);
          changes.push([s, v === "1"]);
        }
        if (changes.length === 0) return this.reply(res, 500, "Failed to set power state: Condition failed: `mask != 0`");
        for (const [s, on] of changes) await this.board.setSlotPower(s, on);
        this.board.log(`bmcd ${this.board.name}: power ${changes.map(([s, on]) => `node${s}=${on ? 1 : 0}`).join(" ")}`);
        return ok();
      }
      case "reset/set":
        await this.board.resetSlot(nodeParam(q));
        return ok();
      case "other/get":
        return this.reply(res, 200, [
          {
            api: API_VERSION,
            version: BMCD_VERSION,
            buildtime: "2024-01-01 00:00:00-00:00",
            ip: this.board.address,
            mac: "02:00:00:00:00:01",
            buildroot: '"Buildroot 2023.02 (isar-k3s lab)"',
            build_version: "2.0.5",
          },
        ]);
      case "uart/get":
        return this.reply(res, 200, this.board.uartRead(nodeParam(q)), "uart");
      case "uart/set": {
        const node = nodeParam(q);
        const cmd = q.get("cmd");
        if (cmd === null) return this.reply(res, 400, "Missing `cmd` parameter");
        await this.board.uartWrite(node, cmd);
        return ok();
      }
      case "usb/get":
        return this.reply(res, 200, [{ mode: this.usb.mode, node: `Node${this.usb.node}`, route: this.usb.route, bus_type: "Usb2" }]);
      case "usb/set": {
        const node = nodeParam(q);
        const m = q.get("mode");
        if (m === null) return this.reply(res, 400, "Missing `mode` parameter");
        if (!/^-?\d+$/.test(m)) return this.reply(res, 400, "Parameter `mode` is not a number");
        const n = Number(m);
        this.usb = { mode: ["Host", "Device", "Flash", "Flash"][n & 3], node, route: (n >> 2) & 1 ? "Bmc" : "AlternativePort" };
        return ok();
      }
      case "reboot/set":
        ok();
        setTimeout(() => this.board.rebootBmc(), 100).unref();
        return;
      default:
        return this.reply(res, 400, `Invalid \`type\` parameter ${type}`);
    }
  }

  private usb = { mode: "Device", node: 1, route: "AlternativePort" };

  private cancelRunning(): void {
    if (this.state.s === "Transferring") {
      this.state.ctx.abort.abort();
      this.state.ctx.upload?.destroy();
    }
  }

  private cancelAll(): void {
    this.cancelRunning();
    this.state = { s: "Error", msg: "cancelled by user" };
  }

  /** `opt=set&type=flash`: start a transfer (replacing any running one); returns its handle. */
  private async requestFlash(q: URLSearchParams): Promise<number> {
    const slot = nodeParam(q);
    const file = q.get("file");
    if (file === null) throw new ApiError(400, "Invalid `file` query parameter");
    const local = q.has("local");
    let size: number;
    let sha: Buffer | undefined;
    if (local) {
      try {
        size = (await fs.promises.stat(this.board.bmcPath(file))).size;
        await (await fs.promises.open(this.board.bmcPath(file), "r")).close();
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const text =
          code === "ENOENT"
            ? "No such file or directory (os error 2)"
            : code === "EACCES"
              ? "Permission denied (os error 13)"
              : code === "EISDIR"
                ? "Is a directory (os error 21)"
                : (e as Error).message;
        throw new ApiError(500, `Failed to ${file}: ${text}`);
      }
    } else {
      const s = q.get("sha256");
      if (s !== null) {
        if (!/^([0-9a-fA-F]{2})*$/.test(s)) throw new ApiError(400, "`sha256` parameter contains invalid hex values: Odd number of digits");
        sha = Buffer.from(s, "hex");
      }
      const len = q.get("length");
      if (len === null) throw new ApiError(411, "Invalid `length` query parameter");
      if (!/^\d+$/.test(len)) throw new ApiError(400, "`length` parameter is not a number");
      size = Number(len);
    }
    this.cancelRunning();
    const ctx: TransferCtx = {
      id: crypto.randomBytes(4).readUInt32LE(0),
      processName: `Node${slot} os install service`,
      size,
      bytesWritten: 0,
      abort: new AbortController(),
      upload: local ? undefined : new PassThrough({ highWaterMark: 1 << 20 }),
      uploadTaken: local,
      slot,
    };
    this.state = { s: "Transferring", ctx };
    this.board.log(`bmcd ${this.board.name}: #${ctx.id} '${ctx.processName}' ${decimalSize(size)} - started (${local ? `local ${file}` : `upload ${file}`})`);
    if (!local) {
      setTimeout(() => {
        if (this.state.s === "Transferring" && this.state.ctx === ctx && !ctx.uploadTaken) {
          this.board.log(`bmcd ${this.board.name}: #${ctx.id} got cancelled due to timeout`);
          ctx.abort.abort();
          ctx.upload?.destroy();
          this.state = { s: "Error", msg: "Send timeout" };
        }
      }, SEND_TIMEOUT_MS).unref();
    }
    const t0 = Date.now();
    const source = local ? fs.createReadStream(this.board.bmcPath(file)) : ctx.upload!;
    void this.flashWorker(ctx, source, file, q.has("skip_crc") ? false : true, sha).then(
      () => {
        if (this.state.s === "Transferring" && this.state.ctx === ctx && !ctx.abort.signal.aborted) this.state = { s: "Done", ms: Date.now() - t0, size };
      },
      (e: Error) => {
        this.board.log(`bmcd ${this.board.name}: #${ctx.id} stopped: ${e.message}`);
        if (this.state.s === "Transferring" && this.state.ctx === ctx && !ctx.abort.signal.aborted) this.state = { s: "Error", msg: e.message };
      },
    );
    return ctx.id;
  }

  /** Write the image to the slot's eMMC (module held off), read it back unless skip_crc, leave the slot off. */
  private async flashWorker(ctx: TransferCtx, source: Readable, file: string, crc: boolean, sha: Buffer | undefined): Promise<void> {
    const slot = ctx.slot;
    const fault = this.board.flashFault(slot);
    const rate = this.board.flashRateBytesPerSec;
    await this.board.setSlotPower(slot, false); // node_in_flash: the module is held in flash mode
    const emmc = this.board.emmcFile(slot);
    let ok = false;
    let fh: fs.promises.FileHandle | undefined;
    let xz: ReturnType<typeof spawn> | undefined;
    try {
      fh = await fs.promises.open(emmc, "w+");
      const inHash = crypto.createHash("sha256");
      const outHash = crypto.createHash("sha256");
      let data: AsyncIterable<Buffer> = source;
      if (sha) {
        const expected = sha;
        data = (async function* () {
          for await (const c of source as AsyncIterable<Buffer>) {
            inHash.update(c);
            yield c;
          }
          const got = inHash.digest();
          if (!got.equals(expected)) throw new Error(`sha256 checksum failed. Expected: ${expected.toString("hex")}, got: ${got.toString("hex")}`);
        })();
      }
      if (file.endsWith(".xz")) {
        const p = spawn("xz", ["-dc"], { stdio: ["pipe", "pipe", "pipe"] });
        xz = p;
        const stdin = p.stdin!;
        stdin.on("error", () => undefined);
        let feedErr: Error | undefined;
        const feeding = (async () => {
          for await (const c of data) if (!stdin.write(c)) await new Promise<void>((r) => stdin.once("drain", () => r()));
          stdin.end();
        })().catch((e: Error) => {
          feedErr = e;
          stdin.destroy();
        });
        let xzErr = "";
        p.stderr!.on("data", (c) => (xzErr += c));
        const decoded = p.stdout!;
        data = (async function* () {
          for await (const c of decoded as AsyncIterable<Buffer>) yield c;
          await feeding;
          if (feedErr) throw feedErr;
          const code = p.exitCode ?? (await new Promise<number | null>((r) => p.once("exit", r)));
          if (code !== 0) throw new Error(`xz decoder error: ${xzErr.trim() || `exit ${code}`}`);
        })();
      }
      const t0 = Date.now();
      let pos = 0;
      for await (const chunk of data) {
        if (ctx.abort.signal.aborted) throw new Error("Interrupted");
        if (fault?.kind === "emmc-write-error" && ctx.size > 0 && pos + chunk.length >= ctx.size / 2)
          throw new Error(fault.message ?? "Input/output error (os error 5)");
        await fh.write(chunk, 0, chunk.length, pos);
        outHash.update(chunk);
        pos += chunk.length;
        ctx.bytesWritten = pos;
        const ahead = pos / rate - (Date.now() - t0) / 1000;
        if (ahead > 0.005) await sleep(ahead * 1000);
      }
      if (ctx.abort.signal.aborted) throw new Error("Interrupted");
      if (fault?.kind === "crc-mismatch" && pos > 0) {
        // the eMMC does not keep what was written: one byte differs on read-back
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, pos >> 1);
        b[0] ^= 0xff;
        await fh.write(b, 0, 1, pos >> 1);
      }
      await fh.sync();
      this.board.log(`bmcd ${this.board.name}: #${ctx.id} wrote ${decimalSize(pos)} to node ${slot}`);
      if (crc) {
        // read back and compare (the firmware's crc pass; bytes_written counts again from 0)
        ctx.bytesWritten = 0;
        const back = crypto.createHash("sha256");
        const buf = Buffer.alloc(1 << 20);
        const t1 = Date.now();
        for (let at = 0; at < pos;) {
          if (ctx.abort.signal.aborted) throw new Error("Interrupted");
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, pos - at), at);
          if (bytesRead === 0) break;
          back.update(buf.subarray(0, bytesRead));
          at += bytesRead;
          ctx.bytesWritten = at;
          const ahead = at / (rate * 2) - (Date.now() - t1) / 1000;
          if (ahead > 0.005) await sleep(ahead * 1000);
        }
        const expected = outHash.digest().readBigUInt64LE(0);
        const calculated = back.digest().readBigUInt64LE(0);
        if (expected !== calculated) throw new Error(`crc error. expected ${expected}, calculated ${calculated}`);
      }
      ok = true;
    } finally {
      xz?.kill();
      source.destroy();
      if (!ok && fh) {
        // an interrupted or failed write leaves a module that does not boot
        await fh.write(Buffer.alloc(1 << 20), 0, 1 << 20, 0).catch(() => undefined);
      }
      await fh?.close();
      await this.board.setSlotPower(slot, false).catch(() => undefined);
      await this.board.flashWritten(slot, ok);
    }
  }

  /** `POST /api/bmc/upload/<handle>`: multipart body, one field holding the image bytes. */
  private async upload(handle: number, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const st = this.state;
    if (st.s !== "Transferring") {
      req.resume();
      return this.reply(res, 400, `cannot execute command in current state. current=${st.s}, expected=Transferring`);
    }
    const ctx = st.ctx;
    if (ctx.id !== handle) {
      req.resume();
      return this.reply(res, 400, "unauthorized request for handle");
    }
    if (ctx.uploadTaken || !ctx.upload) {
      req.resume();
      return this.reply(res, 400, "cannot transfer bytes to worker. This is either because the transfer happens locally, or is already ongoing.");
    }
    ctx.uploadTaken = true;
    const sink = ctx.upload;
    const m = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(req.headers["content-type"] ?? "");
    if (!m) {
      req.resume();
      return this.reply(res, 400, "Multipart form invalid");
    }
    let sent = 0;
    let broken = false;
    try {
      for await (const chunk of multipartFirstField(req, m[1] ?? m[2])) {
        sent += chunk.length;
        if (sink.destroyed) {
          broken = true;
          break;
        }
        if (!sink.write(chunk)) await drainOrClose(sink);
      }
    } catch {
      broken = true;
    }
    if (broken || sink.destroyed) {
      req.resume();
      // give the worker a moment to report its error, as the firmware does
      for (let i = 0; i < 50 && this.state.s === "Transferring" && this.state.ctx === ctx; i++) await sleep(100);
      const msg = this.state.s === "Error" ? this.state.msg : "transfer canceled";
      return this.reply(res, 500, msg);
    }
    sink.end();
    if (sent !== ctx.size) {
      this.cancelAll();
      return this.reply(res, 400, `missing ${decimalSize(Math.max(0, ctx.size - sent))}`);
    }
    res.writeHead(200);
    res.end();
  }
}

function drainOrClose(w: PassThrough): Promise<void> {
  return new Promise<void>((resolve) => {
    if (w.destroyed) return resolve();
    const done = () => {
      w.off("drain", done);
      w.off("close", done);
      resolve();
    };
    w.on("drain", done);
    w.on("close", done);
  });
}

/** Stream the data of the first part of a multipart/form-data body (bounded memory; reads the body to its end). */
export async function* multipartFirstField(body: AsyncIterable<Buffer>, boundary: string): AsyncGenerator<Buffer> {
  const start = Buffer.from(`--${boundary}`);
  const end = Buffer.from(`\r\n--${boundary}`);
  // a manual iterator: leaving a for-await early would destroy the request (and its socket)
  const it = body[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  let inData = false;
  for (;;) {
    const n = await it.next();
    if (n.done) break;
    buf = buf.length ? Buffer.concat([buf, n.value]) : n.value;
    if (!inData) {
      const s = buf.indexOf(start);
      if (s < 0) continue;
      const h = buf.indexOf("\r\n\r\n", s);
      if (h < 0) continue;
      buf = buf.subarray(h + 4);
      inData = true;
    }
    const e = buf.indexOf(end);
    if (e >= 0) {
      if (e > 0) yield buf.subarray(0, e);
      while (!(await it.next()).done) {
        /* the closing boundary and epilogue */
      }
      return;
    }
    // keep a tail that may hold the start of the closing boundary
    const keep = Math.min(buf.length, end.length - 1);
    if (buf.length > keep) {
      yield buf.subarray(0, buf.length - keep);
      buf = Buffer.from(buf.subarray(buf.length - keep));
    }
  }
  throw new Error("multipart body ended without its closing boundary");
}
