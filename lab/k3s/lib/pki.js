"use strict";
/**
 * Tokens, bootstrap-data encryption, node-password hashes and the cluster's certificates (openssl).
 *
 * - A k3s token is "K10<sha256 of the server CA PEM>::server:<password>", "K10<hash>::<password>" or a
 *   bare "<password>". The password authenticates joiners and encrypts the bootstrap data (the CA keys),
 *   which lives in the cluster's own datastore (Secret kube-system/k3s-bootstrap, through the API).
 * - Certificates: server CA (serving certs), client CA (client certs: admin, controllers, kubelets),
 *   etcd CA (etcd serving/peer/client certs), a service-account key pair. EC P-256 throughout.
 * Keys are only ever written to 0600 files under the node's /var/lib/rancher/k3s.
 */
const fs = require("fs");
const os = require("os");
const path = require("path");
const crypto = require("crypto");
const { execFileSync } = require("child_process");

const TOKEN_FORMAT_ERROR = "failed to normalize server token; must be in format K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>";

/** Split a token: "K10<hash>::server:<password>" | "K10<hash>::<password>" | "<password>". */
function parseToken(token) {
  if (!token || /\s/.test(token)) throw new Error(TOKEN_FORMAT_ERROR);
  if (token.startsWith("K10")) {
    const m = /^K10([0-9a-f]{64})::(?:([^:]+):)?(.+)$/.exec(token);
    if (!m) throw new Error(TOKEN_FORMAT_ERROR);
    return { caHash: m[1], user: m[2] || "server", password: m[3] };
  }
  return { password: token };
}

function deriveKey(password, salt) {
  return crypto.pbkdf2Sync(password, Buffer.from(salt, "hex"), 20000, 32, "sha256");
}

/** {salt, iv, tag, data}: AES-256-GCM under a PBKDF2 key of the token password. */
function encrypt(password, obj) {
  const salt = crypto.randomBytes(16).toString("hex");
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", deriveKey(password, salt), iv);
  const data = Buffer.concat([c.update(JSON.stringify(obj), "utf8"), c.final()]);
  return { salt, iv: iv.toString("hex"), tag: c.getAuthTag().toString("hex"), data: data.toString("base64") };
}

/** The decrypted object, or undefined when the password is not the one it was encrypted with. */
function decrypt(password, enc) {
  try {
    const d = crypto.createDecipheriv("aes-256-gcm", deriveKey(password, enc.salt), Buffer.from(enc.iv, "hex"));
    d.setAuthTag(Buffer.from(enc.tag, "hex"));
    return JSON.parse(Buffer.concat([d.update(Buffer.from(enc.data, "base64")), d.final()]).toString("utf8"));
  } catch {
    return undefined;
  }
}

function hashPassword(pw) {
  const salt = crypto.randomBytes(8).toString("hex");
  const key = crypto.scryptSync(pw, salt, 32, { N: 1 << 14, r: 8, p: 1 });
  return `$1:${salt}:14:8:1:${key.toString("hex")}`;
}

function verifyPassword(pw, hash) {
  const m = /^\$1:([0-9a-f]+):(\d+):(\d+):(\d+):([0-9a-f]+)$/.exec(hash || "");
  if (!m) return false;
  const key = crypto.scryptSync(pw, m[1], 32, { N: 1 << Number(m[2]), r: Number(m[3]), p: Number(m[4]) });
  return crypto.timingSafeEqual(key, Buffer.from(m[5], "hex"));
}

function sha256hex(data) {
  return crypto.createHash("sha256").update(data).digest("hex");
}

function openssl(args, cwd) {
  try {
    execFileSync("openssl", args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e.stderr ? e.stderr.toString().trim().split("\n").slice(-5).join(" / ") : e.message;
    throw new Error(`openssl ${args[0]} failed: ${err}`);
  }
}

function withTemp(fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-pki-"));
  fs.chmodSync(dir, 0o700);
  try {
    return fn(dir, (f) => fs.readFileSync(path.join(dir, f), "utf8"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function newCa(cn) {
  return withTemp((dir, read) => {
    openssl(["req", "-x509", ...EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", `/CN=${cn}`], dir);
    return { crt: read("ca.crt"), key: read("ca.key") };
  });
}

/**
 * A certificate signed by `ca` ({crt, key}). subject: {cn, o?}; sans: ["IP:1.2.3.4", "DNS:x"] (serving
 * certs); usage "server" | "client" | "both".
 */
function sign(ca, subject, { sans = [], usage = "client", days = 3650 } = {}) {
  return withTemp((dir, read) => {
    fs.writeFileSync(path.join(dir, "ca.crt"), ca.crt, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "ca.key"), ca.key, { mode: 0o600 });
    const subj = (subject.o ? `/O=${subject.o}` : "") + `/CN=${subject.cn}`;
    openssl(["req", "-new", ...EC, "-keyout", "c.key", "-out", "c.csr", "-subj", subj], dir);
    const eku = { server: "serverAuth", client: "clientAuth", both: "serverAuth,clientAuth" }[usage];
    const ext = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment", `extendedKeyUsage=${eku}`];
    if (sans.length) ext.push(`subjectAltName=${sans.join(",")}`);
    fs.writeFileSync(path.join(dir, "ext.cnf"), ext.join("\n") + "\n");
    openssl(["x509", "-req", "-in", "c.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", String(days), "-extfile", "ext.cnf", "-out", "c.crt"], dir);
    return { crt: read("c.crt"), key: read("c.key") };
  });
}

/** The cluster-wide secrets a first server creates: the three CAs, the service-account key, the admin cert. */
function newClusterPki() {
  const ts = Math.floor(Date.now() / 1000);
  const serverCa = newCa(`k3s-server-ca@${ts}`);
  const clientCa = newCa(`k3s-client-ca@${ts}`);
  const etcdCa = newCa(`etcd-server-ca@${ts}`);
  const sa = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1", publicKeyEncoding: { type: "spki", format: "pem" }, privateKeyEncoding: { type: "pkcs8", format: "pem" } });
  const admin = sign(clientCa, { cn: "system:admin", o: "system:masters" });
  return { serverCa, clientCa, etcdCa, saKey: sa.privateKey, saPub: sa.publicKey, admin };
}

/** A DER certificate as the PEM text openssl writes (64-column base64). */
function derToPem(der) {
  const b = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN CERTIFICATE-----\n${b}\n-----END CERTIFICATE-----\n`;
}

module.exports = { TOKEN_FORMAT_ERROR, parseToken, encrypt, decrypt, hashPassword, verifyPassword, sha256hex, newCa, sign, newClusterPki, derToPem };
