/**
 * Test helpers for the SWUpdate suites: throwaway signing certificates made with openssl, and a wrapper
 * around the real `swupdate -c` (Debian 2022.12) that runs each check in its own TMPDIR.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { run } from "../../lib/swupdate/run";

export async function tempDir(prefix: string): Promise<string> {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), prefix));
}

export interface TestSigner {
  key: string;
  cert: string;
  certPath: string;
  /** Public key PEM (for raw RSA verification). */
  pubPath: string;
}

/** RSA-2048 key + self-signed certificate with keyUsage=digitalSignature, extendedKeyUsage=emailProtection. */
export async function makeSigner(dir: string, cn: string): Promise<TestSigner> {
  const cnf = path.join(dir, `${cn}.cnf`);
  await fs.promises.writeFile(
    cnf,
    [
      "[req]",
      "distinguished_name=dn",
      "prompt=no",
      "[dn]",
      `CN=${cn}`,
      "[v3]",
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=emailProtection",
      "",
    ].join("\n"),
  );
  const keyPath = path.join(dir, `${cn}.key`);
  const certPath = path.join(dir, `${cn}.crt`);
  const pubPath = path.join(dir, `${cn}.pub`);
  const r = await run(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "2", "-config", cnf, "-extensions", "v3"],
    { timeoutMs: 60_000 },
  );
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.outputTail}`);
  const p = await run(["openssl", "pkey", "-in", keyPath, "-pubout", "-out", pubPath]);
  if (p.code !== 0) throw new Error(`openssl pkey failed: ${p.outputTail}`);
  return { key: await fs.promises.readFile(keyPath, "utf8"), cert: await fs.promises.readFile(certPath, "utf8"), certPath, pubPath };
}

export interface SwupdateCheck {
  accepted: boolean;
  /** Exit codes of the attempts. */
  codes: (number | null)[];
  log: string;
}

/**
 * `swupdate -c -k <cert> -H <board>:<rev> [-e sel] [-K aes] -i <bundle>` in a fresh TMPDIR.
 *
 * Debian's swupdate 2022.12 sometimes exits 1 after a successful check (its log says "SWUPDATE
 * successful" and shows no ERROR: a race with the chunks_downloader child at exit). Such runs are
 * retried, up to 6 attempts; a bundle counts as accepted only when one attempt exits 0. A run that
 * logs an ERROR is a rejection and is not retried.
 */
export async function swupdateCheck(
  bundle: string,
  certPath: string,
  board: string,
  rev: string,
  extra: { select?: string; aesKeyFile?: string; verbose?: boolean; boardTmp?: boolean } = {},
): Promise<SwupdateCheck> {
  const codes: (number | null)[] = [];
  let log = "";
  for (let attempt = 0; attempt < 6; attempt++) {
    const tmp = await tempDir("swu-check-");
    try {
      const argv = ["swupdate", "-c", "-k", certPath, "-H", `${board}:${rev}`];
      if (extra.select) argv.push("-e", extra.select);
      if (extra.aesKeyFile) argv.push("-K", extra.aesKeyFile);
      if (extra.verbose) argv.push("-v");
      argv.push("-i", bundle);
      // boardTmp: TMPDIR=/tmp as on a board (its length bounds member names), on a private tmpfs
      // (so the bundle and certificate must not be under /tmp).
      const cmd = extra.boardTmp
        ? ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs tmpfs /tmp && exec "$@"', "sh", ...argv]
        : argv;
      // A run that hangs (seen once in clean-room CI: Debian's 2022.12 never exited on an RSA bundle) is
      // killed after 40 s and retried like the exit race; it is never counted as accepted.
      const r = await run(cmd, { env: { ...process.env, TMPDIR: extra.boardTmp ? "/tmp" : tmp }, timeoutMs: 40_000 }).catch((e: Error) => {
        if (!/did not finish within/.test(e.message)) throw e;
        codes.push(null);
        log = e.message;
        return undefined;
      });
      if (!r) continue;
      codes.push(r.code);
      log = r.stdout.toString("utf8") + r.stderrTail;
      if (r.code === 0) return { accepted: true, codes, log };
      const raced = /SWUPDATE successful/.test(log) && !/\[ERROR\]/.test(log);
      if (!raced) return { accepted: false, codes, log };
    } finally {
      await fs.promises.rm(tmp, { recursive: true, force: true });
    }
  }
  return { accepted: false, codes, log };
}
