/**
 * Signing and encryption, checked with the real openssl: CMS verifies against the certificate, RSA PKCS#1
 * v1.5 is byte-identical to `openssl dgst -sha256 -sign`, RSA-PSS verifies the way SWUpdate verifies it
 * (saltlen -2 = auto), the key never appears in any process argv and is handed to openssl as a 0600 file
 * in a 0700 directory that is gone afterwards; AES-256-CBC output decrypts with `openssl enc -d`.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { SigningError, deriveIvt, encryptFile, formatAesKeyFile, parseAesKeyFile, signSwDescription } from "../../lib/swupdate/sign";
import { run } from "../../lib/swupdate/run";
import { TestSigner, makeSigner, tempDir } from "./helpers";

let dir: string;
let signer: TestSigner;
let other: TestSigner;
const content = Buffer.from('software = { version = "1.0"; };\n');

beforeAll(async () => {
  dir = await tempDir("swu-sign-test-");
  signer = await makeSigner(dir, "signer");
  other = await makeSigner(dir, "other");
  await fs.promises.writeFile(path.join(dir, "sw-description"), content);
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

test("CMS signature verifies against the certificate and fails against another one", async () => {
  const sig = await signSwDescription(content, { method: "cms", key: signer.key, certificate: signer.cert });
  const sigPath = path.join(dir, "cms.sig");
  await fs.promises.writeFile(sigPath, sig);
  const verify = (cert: string) =>
    run([
      "openssl",
      "cms",
      "-verify",
      "-binary",
      "-inform",
      "DER",
      "-in",
      sigPath,
      "-content",
      path.join(dir, "sw-description"),
      "-CAfile",
      cert,
      "-purpose",
      "any",
      "-out",
      "/dev/null",
    ]);
  const ok = await verify(signer.certPath);
  expect(ok.outputTail).toMatch(/Verification successful/);
  expect(ok.code).toBe(0);
  const bad = await verify(other.certPath);
  expect(bad.code).not.toBe(0);
});

test("RSA PKCS#1 v1.5 equals `openssl dgst -sha256 -sign` byte for byte", async () => {
  const sig = await signSwDescription(content, { method: "rsa", key: signer.key });
  const keyFile = path.join(dir, "signer.key");
  const ref = await run(["openssl", "dgst", "-sha256", "-sign", keyFile, path.join(dir, "sw-description")]);
  expect(ref.code).toBe(0);
  expect(sig.equals(ref.stdout)).toBe(true);
});

test("RSA-PSS verifies with SWUpdate's settings (pss, saltlen -2 = auto) and not as PKCS#1 v1.5", async () => {
  const sig = await signSwDescription(content, { method: "rsa-pss", key: signer.key });
  const sigPath = path.join(dir, "pss.sig");
  await fs.promises.writeFile(sigPath, sig);
  const v = (extra: string[]) =>
    run(["openssl", "dgst", "-sha256", "-verify", signer.pubPath, ...extra, "-signature", sigPath, path.join(dir, "sw-description")]);
  const ok = await v(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-2"]);
  expect(ok.stdout.toString()).toMatch(/Verified OK/);
  const asPkcs1 = await v([]);
  expect(asPkcs1.code).not.toBe(0);
  // Salt length is the maximum (modulus bytes - hash - 2 = 222 for RSA-2048), i.e. openssl's -2 when signing.
  const maxSalt = await v(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:222"]);
  expect(maxSalt.stdout.toString()).toMatch(/Verified OK/);
});

test("the key reaches openssl only as a 0600 file in a private 0700 dir, never in argv, and is removed", async () => {
  // Wrapper around the real openssl that records what it sees, then runs it.
  const record = path.join(dir, "record.txt");
  const wrapper = path.join(dir, "openssl-wrapper.sh");
  await fs.promises.writeFile(
    wrapper,
    `#!/bin/sh
key=""; prev=""
for a in "$@"; do [ "$prev" = "-inkey" ] && key="$a"; prev="$a"; done
{ echo "argv=$*"; echo "key=$key"; stat -c 'file=%a' "$key"; stat -c 'dir=%a' "$(dirname "$key")"; env; } > ${JSON.stringify(record)}
exec openssl "$@"
`,
    { mode: 0o755 },
  );
  const sig = await signSwDescription(content, { method: "cms", key: signer.key, certificate: signer.cert, openssl: wrapper });
  expect(sig.length).toBeGreaterThan(100);
  const seen = await fs.promises.readFile(record, "utf8");
  const keyBody = signer.key.split("\n")[1];
  expect(seen).toMatch(/^argv=.*-inkey /m);
  expect(seen).not.toContain(keyBody); // neither argv nor environment carries key material
  expect(seen).not.toContain("PRIVATE KEY");
  const rec = await fs.promises.readFile(record, "utf8");
  expect(rec).toMatch(/file=600/);
  expect(rec).toMatch(/dir=700/);
  const keyPath = /key=(.*)/.exec(rec)![1];
  expect(fs.existsSync(keyPath)).toBe(false);
  expect(fs.existsSync(path.dirname(keyPath))).toBe(false);
});

test("errors: wrong certificate, encrypted key, not a key, EC key for RSA — and never the key text", async () => {
  const e1 = await signSwDescription(content, { method: "cms", key: signer.key, certificate: other.cert }).catch((e: Error) => e);
  expect(e1).toBeInstanceOf(SigningError);
  expect((e1 as Error).message).toMatch(/certificate belongs to the signing key/);
  expect((e1 as Error).message).not.toContain(signer.key.split("\n")[1]);
  const enc = crypto.generateKeyPairSync("rsa", {
    modulusLength: 1024,
    privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  await expect(signSwDescription(content, { method: "rsa", key: enc.privateKey })).rejects.toThrow(/passphrase-protected/);
  await expect(signSwDescription(content, { method: "rsa", key: "hello" })).rejects.toThrow(/not a PEM private key/);
  const ec = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  await expect(signSwDescription(content, { method: "rsa-pss", key: ec })).rejects.toThrow(/needs an RSA key, the key is ec/);
  await expect(signSwDescription(content, { method: "cms", key: signer.key })).rejects.toThrow(/needs the PEM certificate/);
});

describe("AES-256-CBC", () => {
  test("key file format round-trips and bad files are refused", () => {
    const k = { key: crypto.randomBytes(32), iv: crypto.randomBytes(16) };
    const text = formatAesKeyFile(k);
    expect(text).toMatch(/^[0-9a-f]{64} [0-9a-f]{32}\n$/);
    const back = parseAesKeyFile(text);
    expect(back.key.equals(k.key) && back.iv.equals(k.iv)).toBe(true);
    expect(() => parseAesKeyFile("abcd")).toThrow(/<64 hex digits key> <32 hex digits iv>/);
  });

  test("streamed encryption decrypts with openssl enc -d (sizes around the block size)", async () => {
    const key = crypto.randomBytes(32);
    for (const size of [0, 1, 15, 16, 17, 1024 * 1024 + 5]) {
      const src = path.join(dir, `plain-${size}`);
      const dst = path.join(dir, `enc-${size}`);
      const out = path.join(dir, `dec-${size}`);
      const data = crypto.randomBytes(size);
      await fs.promises.writeFile(src, data);
      const ivt = deriveIvt(key, "img", crypto.createHash("sha256").update(data).digest("hex"));
      await encryptFile(src, dst, key, ivt);
      const st = await fs.promises.stat(dst);
      expect(st.size).toBe(size + 16 - (size % 16));
      expect(st.mode & 0o777).toBe(0o600);
      // Throwaway test key: passing it in argv here is fine; production code never does.
      const r = await run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", key.toString("hex"), "-iv", ivt, "-in", dst, "-out", out]);
      expect(r.code).toBe(0);
      expect((await fs.promises.readFile(out)).equals(data)).toBe(true);
    }
  });

  test("derived ivt is deterministic and differs per image name and content", () => {
    const key = Buffer.alloc(32, 1);
    expect(deriveIvt(key, "a", "00")).toBe(deriveIvt(key, "a", "00"));
    expect(deriveIvt(key, "a", "00")).not.toBe(deriveIvt(key, "b", "00"));
    expect(deriveIvt(key, "a", "00")).not.toBe(deriveIvt(key, "a", "01"));
    expect(deriveIvt(key, "a", "00")).toMatch(/^[0-9a-f]{32}$/);
  });
});
