"use strict";
/**
 * A small client for the real kube-apiserver (HTTPS, JSON) and for the server CA a joiner fetches.
 *
 *   const api = client({ server: "https://10.0.0.1:6443", ca, cert, key })   // client certificate
 *   const api = client({ server, ca, token })                                  // bearer token
 *   await api.get("/api/v1/nodes/x")  -> {status, body}  (body parsed when JSON)
 *
 * Errors that are not HTTP answers (refused, timeout, TLS) reject with the Go-style text k3s prints,
 * e.g. `dial tcp 10.0.0.1:6443: connect: connection refused`.
 */
const https = require("https");
const tls = require("tls");
const { derToPem } = require("./pki");

function netError(e, hostPort) {
  if (e.code === "ECONNREFUSED") return new Error(`dial tcp ${hostPort}: connect: connection refused`);
  if (e.code === "ETIMEDOUT" || e.code === "ESOCKETTIMEDOUT") return new Error(`dial tcp ${hostPort}: i/o timeout`);
  return new Error(`${hostPort}: ${e.message}`);
}

function client({ server, ca, cert, key, token, timeoutMs = 15000 }) {
  const u = new URL(server);
  const hostPort = `${u.hostname}:${u.port || 443}`;
  function request(method, p, body, contentType = "application/json") {
    return new Promise((resolve, reject) => {
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
      if (data) {
        headers["Content-Type"] = contentType;
        headers["Content-Length"] = data.length;
      }
      const req = https.request({ host: u.hostname, port: u.port || 443, path: p, method, ca, cert, key, headers, timeout: timeoutMs, agent: false }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON (e.g. /readyz)
          }
          resolve({ status: res.statusCode, statusText: res.statusMessage, body: parsed, text });
        });
      });
      req.on("timeout", () => req.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
      req.on("error", (e) => reject(netError(e, hostPort)));
      if (data) req.write(data);
      req.end();
    });
  }
  return {
    server,
    url: (p) => `${u.origin}${p}`,
    request,
    get: (p) => request("GET", p),
    post: (p, b) => request("POST", p, b),
    put: (p, b) => request("PUT", p, b),
    patch: (p, b, type = "application/merge-patch+json") => request("PATCH", p, b, type),
    del: (p) => request("DELETE", p),
  };
}

/**
 * The CA certificate (PEM) that signed the TLS certificate served at host:port (the server sends its
 * chain, leaf + CA, as k3s's /cacerts would give it), without trusting it yet: the caller checks its
 * hash against the K10 token.
 */
function fetchServerCa(host, port, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, rejectUnauthorized: false, servername: /^[\d.]+$/.test(host) ? undefined : host, timeout: timeoutMs }, () => {
      const leaf = s.getPeerCertificate(true);
      s.end();
      let c = leaf;
      const seen = new Set();
      while (c && c.issuerCertificate && c.issuerCertificate !== c && !seen.has(c.fingerprint256)) {
        seen.add(c.fingerprint256);
        c = c.issuerCertificate;
      }
      if (!c || c === leaf || !c.raw) return reject(new Error(`https://${host}:${port} did not send its CA certificate`));
      resolve(derToPem(c.raw));
    });
    s.on("timeout", () => s.destroy(Object.assign(new Error("timeout"), { code: "ETIMEDOUT" })));
    s.on("error", (e) => reject(netError(e, `${host}:${port}`)));
  });
}

module.exports = { client, fetchServerCa };
