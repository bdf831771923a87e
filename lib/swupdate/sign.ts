/**
 * Signing of sw-description and AES-256-CBC encryption of bundle artifacts.
 *
 * Contract:
 * - CMS (default; what Debian's swupdate verifies): `openssl cms -sign -signer cert -inkey key -outform DER
 *   -nosmimecap -binary`. The private key reaches openssl only as a 0600 file inside a private 0700
 *   directory created with mkdtemp and removed in `finally`; never in argv, environment, logs or errors.
 * - RSA PKCS#1 v1.5 and RSA-PSS: computed in-process with Node's crypto (OpenSSL underneath), so the key
 *   never touches the disk. PKCS#1 v1.5 gives the same bytes as `openssl dgst -sha256 -sign`; PSS uses
 *   SHA-256, MGF1-SHA-256 and the maximum salt length (= `-sigopt rsa_pss_saltlen:-2` when signing),
 *   which SWUpdate's verifier accepts (it sets saltlen -2 = auto-detect when verifying).
 * - AES: SWUpdate's key file is one line "<64 hex key> <32 hex iv>". Artifacts are encrypted as a stream
 *   (AES-256-CBC, PKCS#7 padding, constant memory). The per-image IV ("ivt") defaults to one derived from
 *   the key and the plaintext's sha256 (HMAC), so the same input gives the same bundle bytes.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { pipeline } from "stream/promises";
import type { SigningMethod } from "../model/types";
import { run } from "./run";

export class SigningError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SigningError";
  }
}

export interface SigningInput {
  method: SigningMethod;
  /** PEM private key (unencrypted). Secret. */
  key: string;
  /** PEM certificate matching the key; required for CMS. */
  certificate?: string;
  /** openssl binary; default "openssl". */
  openssl?: string;
}

/**
 * Run `fn` with a private directory (mode 0700, from mkdtemp) that is removed afterwards, whatever happens.
 */
export async function withPrivateDir<T>(fn: (dir: string) => Promise<T>, parent = os.tmpdir()): Promise<T> {
  const dir = await fs.promises.mkdtemp(path.join(parent, "swu-sign-"));
  try {
    await fs.promises.chmod(dir, 0o700);
    return await fn(dir);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** Write a secret to a new 0600 file (fails if it exists). */
export async function writeSecretFile(file: string, content: string | Buffer): Promise<void> {
  const fh = await fs.promises.open(file, "wx", 0o600);
  try {
    await fh.writeFile(content);
  } finally {
    await fh.close();
  }
}

function checkPrivateKey(key: string): crypto.KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new SigningError("the SWUpdate signing key is not a PEM private key (-----BEGIN ... PRIVATE KEY-----): set the secret config to the PEM text");
  }
  if (/ENCRYPTED/.test(key)) {
    throw new SigningError(
      "the SWUpdate signing key is passphrase-protected: store it unencrypted in the Pulumi secret (openssl pkey -in key.pem -out plain.pem)",
    );
  }
  try {
    return crypto.createPrivateKey(key);
  } catch {
    throw new SigningError("the SWUpdate signing key cannot be parsed as a PEM private key: check the secret config value");
  }
}

/** Sign the sw-description bytes; returns the detached signature (sw-description.sig). */
export async function signSwDescription(content: Buffer, s: SigningInput): Promise<Buffer> {
  const keyObject = checkPrivateKey(s.key);
  if (s.method === "rsa" || s.method === "rsa-pss") {
    if (keyObject.asymmetricKeyType !== "rsa") {
      throw new SigningError(`signing method ${s.method} needs an RSA key, the key is ${keyObject.asymmetricKeyType}: use an RSA key or signing "cms"`);
    }
    if (s.method === "rsa") return crypto.sign("sha256", content, { key: keyObject, padding: crypto.constants.RSA_PKCS1_PADDING });
    return crypto.sign("sha256", content, {
      key: keyObject,
      padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: crypto.constants.RSA_PSS_SALTLEN_MAX_SIGN,
    });
  }
  if (s.method !== "cms") throw new SigningError(`unknown signing method ${JSON.stringify(s.method)}: use cms, rsa or rsa-pss`);
  if (!s.certificate || !/-----BEGIN CERTIFICATE-----/.test(s.certificate)) {
    throw new SigningError("CMS signing needs the PEM certificate of the signing key (swupdate.certificate)");
  }
  const cert = s.certificate;
  return withPrivateDir(async (dir) => {
    const keyFile = path.join(dir, "key.pem");
    const certFile = path.join(dir, "cert.pem");
    const inFile = path.join(dir, "sw-description");
    const sigFile = path.join(dir, "sw-description.sig");
    await writeSecretFile(keyFile, s.key);
    await fs.promises.writeFile(certFile, cert, { mode: 0o600 });
    await fs.promises.writeFile(inFile, content, { mode: 0o600 });
    const r = await run(
      [
        s.openssl ?? "openssl",
        "cms",
        "-sign",
        "-in",
        inFile,
        "-out",
        sigFile,
        "-signer",
        certFile,
        "-inkey",
        keyFile,
        "-outform",
        "DER",
        "-nosmimecap",
        "-binary",
      ],
      { timeoutMs: 60_000 },
    );
    if (r.code !== 0) {
      throw new SigningError(
        `openssl cms -sign failed (exit ${r.code ?? r.signal}); check that the certificate belongs to the signing key:\n${r.stderrTail.split(dir).join("<tmp>")}`,
      );
    }
    return fs.promises.readFile(sigFile);
  });
}

// ---------------------------------------------------------------------------------------------------
// AES-256-CBC

export interface AesKey {
  key: Buffer;
  iv: Buffer;
}

/** Parse SWUpdate's AES key file text: "<64 hex key> <32 hex iv>" (one line). */
export function parseAesKeyFile(text: string): AesKey {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 2 || !/^[0-9a-fA-F]{64}$/.test(parts[0]) || !/^[0-9a-fA-F]{32}$/.test(parts[1])) {
    throw new SigningError('the SWUpdate AES key must be "<64 hex digits key> <32 hex digits iv>" (e.g. from: openssl rand -hex 32; openssl rand -hex 16)');
  }
  return { key: Buffer.from(parts[0], "hex"), iv: Buffer.from(parts[1], "hex") };
}

export function formatAesKeyFile(k: AesKey): string {
  if (k.key.length !== 32 || k.iv.length !== 16) throw new SigningError("AES-256-CBC needs a 32-byte key and a 16-byte iv");
  return `${k.key.toString("hex")} ${k.iv.toString("hex")}\n`;
}

/** Deterministic per-image IV: HMAC-SHA256(key, "swupdate-ivt\0" + name + "\0" + plaintext sha256), first 16 bytes. */
export function deriveIvt(key: Buffer, name: string, plaintextSha256: string): string {
  return crypto.createHmac("sha256", key).update(`swupdate-ivt\0${name}\0${plaintextSha256}`).digest().subarray(0, 16).toString("hex");
}

/** Stream-encrypt `src` into a new file `dst` (0600) with AES-256-CBC and PKCS#7 padding. */
export async function encryptFile(src: string, dst: string, key: Buffer, ivtHex: string): Promise<void> {
  if (key.length !== 32) throw new SigningError("AES-256-CBC needs a 32-byte key");
  if (!/^[0-9a-f]{32}$/.test(ivtHex)) throw new SigningError(`ivt ${JSON.stringify(ivtHex)} must be 32 lowercase hex digits`);
  const cipher = crypto.createCipheriv("aes-256-cbc", key, Buffer.from(ivtHex, "hex"));
  await pipeline(fs.createReadStream(src, { highWaterMark: 1 << 20 }), cipher, fs.createWriteStream(dst, { flags: "wx", mode: 0o600 }));
}
