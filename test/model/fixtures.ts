/** A valid raw fleet config used as the base of the bad-config table; each case breaks one thing. */

import { FleetConfigError, parseFleet } from "../../lib/model/parse";

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z host";
export const HEX = "a".repeat(64);

export function validRaw(): any {
  return {
    clusterName: "test",
    bmcs: [{ name: "bmc", address: "10.0.0.2", ssh: { user: "root", port: 22, hostKey: HOST_KEY } }],
    nodes: [
      { name: "srv1", role: "server", hardware: "turing-rk1", address: "10.0.0.11", delivery: { method: "tpi", bmc: "bmc", slot: 1 } },
      { name: "srv2", role: "server", hardware: "turing-rk1", address: "10.0.0.12", delivery: { method: "tpi", bmc: "bmc", slot: 2 } },
      { name: "srv3", role: "server", hardware: "x86-controller", address: "10.0.0.10", delivery: { method: "swupdate" }, ssh: { hostKey: HOST_KEY } },
      {
        name: "jetson1",
        role: "agent",
        hardware: "jetson-orin-nano",
        address: "10.0.0.20",
        delivery: { method: "swupdate", selection: "stable,main" },
        ssh: { hostKey: HOST_KEY },
        labels: { "example.com/zone": "line-1" },
        taints: ["nvidia.com/gpu=true:NoSchedule"],
      },
    ],
    artifacts: {
      "turing-rk1": {
        machine: "turing-rk1",
        version: "1",
        rootfs: { path: "r.tar.gz", sha256: HEX },
        kernel: { path: "k", sha256: HEX },
        wic: { path: "w.wic", sha256: HEX },
      },
      "x86-controller": { machine: "qemu-amd64", version: "1", rootfs: { path: "r.tar.gz", sha256: HEX }, kernel: { path: "k", sha256: HEX } },
      "jetson-orin-nano": {
        machine: "jetson-orin-nano",
        version: "1",
        rootfs: { url: "https://ci.example/r.tar.gz", sha256: HEX },
        kernel: { path: "k", sha256: HEX },
        dtbs: [{ path: "a.dtb", sha256: HEX }],
      },
    },
    swupdate: { certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" },
    authorizedKeys: [HOST_KEY],
  };
}

/** The problems parseFleet reports for validRaw() changed by `mutate` ([] when it parses). */
export function problemsOf(mutate: (r: ReturnType<typeof validRaw>) => void): { path: string; message: string }[] {
  const raw = validRaw();
  mutate(raw);
  try {
    parseFleet(raw);
  } catch (e) {
    if (e instanceof FleetConfigError) return e.problems;
    throw e;
  }
  return [];
}

/**
 * The problem parseFleet reports at `path` for validRaw() changed by `mutate`; fails listing every
 * problem when there is none at `path`, and when its message does not match `fix`.
 */
export function expectProblemAt(mutate: (r: ReturnType<typeof validRaw>) => void, path: string, fix: RegExp): void {
  const ps = problemsOf(mutate);
  const hit = ps.find((p) => p.path === path);
  if (!hit) throw new Error(`no problem at ${path}; got:\n${ps.map((p) => `${p.path}: ${p.message}`).join("\n")}`);
  expect(hit.message).toMatch(fix);
}
