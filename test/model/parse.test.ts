import { FleetConfigError, parseFleet } from "../../lib/model/parse";
import { hexToSri, isOpenSshPublicKey, normalizeSha256 } from "../../lib/model/checks";
import { expectProblemAt, HEX, problemsOf, validRaw } from "./fixtures";

type Raw = ReturnType<typeof validRaw>;

const problems = problemsOf;

describe("parseFleet accepts a valid fleet", () => {
  test("defaults are filled", () => {
    const f = parseFleet(validRaw());
    expect(f.nodes).toHaveLength(4);
    expect(f.nodes[0].hostname).toBe("srv1");
    expect(f.nodes[0].arch).toBe("arm64");
    expect(f.nodes[0].ssh).toEqual({ user: "deploy", port: 22, hostKey: undefined });
    expect(f.nodes[2].arch).toBe("x86_64");
    expect(f.k3s.disable).toEqual(["traefik", "servicelb", "local-storage"]);
    expect(f.k3s.clusterCidr).toBe("10.42.0.0/16");
    expect(f.bmcs[0].imageDir).toBe("/mnt/sdcard/isar-k3s");
    expect(f.swupdate.signing).toBe("cms");
    expect(f.network.profile).toBe("simple");
    expect(f.nodes[3].delivery).toEqual({ method: "swupdate", selection: "stable,main", rootDevice: "/dev/mmcblk0p1", altRootDevice: undefined });
    expect(f.images.pkgsSource).toBe("nixpkgs");
    expect(f.nodes[3].taints).toEqual([{ key: "nvidia.com/gpu", value: "true", effect: "NoSchedule" }]);
  });

  test("SRI pins are normalised to hex", () => {
    const raw = validRaw();
    const hex = "0123456789abcdef".repeat(4);
    raw.artifacts["turing-rk1"].kernel.sha256 = hexToSri(hex);
    expect(parseFleet(raw).artifacts["turing-rk1"]!.kernel.sha256).toBe(hex);
  });

  test("the committed stack files parse; the dev stack has the lab's shape", () => {
    const { parse } = require("yaml");
    const fs = require("fs");
    // a fleet's shape: its servers (delivery path, slot) and its agents' delivery paths
    const shape = (stack: string) => {
      const doc = parse(fs.readFileSync(`${__dirname}/../../Pulumi.${stack}.yaml`, "utf8"));
      const raw: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(doc.config)) raw[k.replace(/^isar-k3s:/, "")] = v;
      const fleet = parseFleet(raw);
      const path = (n: (typeof fleet.nodes)[number]) => (n.delivery.method === "tpi" ? `tpi slot ${n.delivery.slot}` : "swupdate");
      return {
        servers: fleet.nodes
          .filter((n) => n.role === "server")
          .map(path)
          .sort(),
        agentPaths: [...new Set(fleet.nodes.filter((n) => n.role === "agent").map((n) => n.delivery.method))].sort(),
        slots: fleet.nodes.filter((n) => n.delivery.method === "tpi").map(path),
      };
    };
    const lab = shape("lab");
    expect(lab).toEqual({
      servers: ["swupdate", "tpi slot 1", "tpi slot 2"],
      agentPaths: ["swupdate", "tpi"],
      slots: ["tpi slot 1", "tpi slot 2", "tpi slot 3"],
    });
    // issue 13: the dev stack mirrors it (three servers, two on BMC slots and one SWUpdate; agents on both paths)
    expect(shape("dev")).toEqual(lab);
  });
});

// Each row: a description, a mutation of a valid config, the config path the message must name,
// and a fragment of the fix the message must suggest.
const BAD: [string, (r: Raw) => void, string, RegExp][] = [
  ["address not IPv4", (r) => (r.nodes[1].address = "300.1.1.1"), "nodes[1].address", /"300\.1\.1\.1" is not an IPv4 address/],
  ["address with leading zeros", (r) => (r.nodes[0].address = "010.0.0.1"), "nodes[0].address", /not an IPv4/],
  ["port out of range", (r) => (r.nodes[2].ssh.port = 70000), "nodes[2].ssh.port", /1 to 65535/],
  ["port not a number", (r) => (r.bmcs[0].ssh.port = "22"), "bmcs[0].ssh.port", /not a TCP port/],
  ["node name with space", (r) => (r.nodes[0].name = "srv 1"), "nodes[0].name", /RFC 1123/],
  ["hostname with command substitution", (r) => (r.nodes[0].hostname = "a$(reboot)"), "nodes[0].hostname", /RFC 1123/],
  ["empty node name", (r) => (r.nodes[0].name = ""), "nodes[0].name", /"" is not a valid node name/],
  ["empty hostname", (r) => (r.nodes[1].hostname = ""), "nodes[1].hostname", /"" is not a valid hostname/],
  ["empty BMC name", (r) => (r.bmcs[0].name = ""), "bmcs[0].name", /"" is not a valid BMC name/],
  [
    "empty release name",
    (r) => (r.workloads = { helmCharts: [{ name: "", chart: "./charts/x" }] }),
    "workloads.helmCharts[0].name",
    /"" is not a valid release name/,
  ],
  [
    "SWUpdate node without a pinned host key",
    (r) => delete r.nodes[3].ssh.hostKey,
    "nodes[3].ssh.hostKey",
    /required for a node updated with SWUpdate: pin its SSH host public key/,
  ],
  ["hostname with backticks", (r) => (r.nodes[1].hostname = "`id`"), "nodes[1].hostname", /RFC 1123/],
  ["hostname with semicolon", (r) => (r.nodes[1].hostname = "a;rm"), "nodes[1].hostname", /RFC 1123/],
  ["hostname with quote", (r) => (r.nodes[1].hostname = "a'b"), "nodes[1].hostname", /RFC 1123/],
  ["hostname with newline", (r) => (r.nodes[1].hostname = "a\nb"), "nodes[1].hostname", /RFC 1123/],
  ["uppercase hostname", (r) => (r.nodes[1].hostname = "Srv2"), "nodes[1].hostname", /lowercase/],
  ["bad label key", (r) => (r.nodes[3].labels = { "bad key": "x" }), 'nodes[3].labels."bad key"', /label key/],
  ["bad label value", (r) => (r.nodes[3].labels = { zone: "a b" }), 'nodes[3].labels."zone"', /label value/],
  ["label value too long", (r) => (r.nodes[3].labels = { zone: "x".repeat(64) }), 'nodes[3].labels."zone"', /63/],
  ["taint without effect", (r) => (r.nodes[3].taints = ["gpu=true"]), "nodes[3].taints[0]", /key=value:Effect/],
  ["taint with unknown effect", (r) => (r.nodes[3].taints = ["gpu=true:Sometimes"]), "nodes[3].taints[0]", /NoSchedule/],
  ["duplicate node name", (r) => (r.nodes[1].name = "srv1"), "nodes[1].name", /duplicate node name "srv1" \(also used by nodes\[0\]\.name\)/],
  ["duplicate hostname", (r) => (r.nodes[2].hostname = "srv1"), "nodes[2].hostname", /duplicate hostname/],
  ["duplicate address", (r) => (r.nodes[3].address = "10.0.0.11"), "nodes[3].address", /duplicate address/],
  ["duplicate BMC slot", (r) => (r.nodes[1].delivery.slot = 1), "nodes[1].delivery.slot", /duplicate BMC slot/],
  ["slot outside 1-4", (r) => (r.nodes[1].delivery.slot = 5), "nodes[1].delivery.slot", /5 is not a slot: a Turing Pi 2 board has slots 1–4/],
  ["unknown BMC", (r) => (r.nodes[0].delivery.bmc = "nope"), "nodes[0].delivery.bmc", /no BMC named "nope"/],
  ["no server", (r) => r.nodes.forEach((n: any) => (n.role = "agent")), "nodes", /no node with role "server"/],
  ["even number of servers", (r) => (r.nodes[3].role = "server"), "nodes", /4 servers tolerate 1 failure\(s\), the same as 3/],
  ["hardware without pins", (r) => delete r.artifacts["x86-controller"], "nodes[2].hardware", /add artifacts\.x86-controller/],
  ["malformed sha256", (r) => (r.artifacts["turing-rk1"].rootfs.sha256 = "abc"), "artifacts.turing-rk1.rootfs.sha256", /64 hex digits/],
  ["SRI with wrong length", (r) => (r.artifacts["turing-rk1"].kernel.sha256 = "sha256-AAAA"), "artifacts.turing-rk1.kernel.sha256", /SRI/],
  ["host key not OpenSSH", (r) => (r.bmcs[0].ssh.hostKey = "AAAAC3Nz"), "bmcs[0].ssh.hostKey", /OpenSSH public key line/],
  [
    "host key type/blob mismatch",
    (r) => (r.nodes[2].ssh.hostKey = "ssh-rsa " + Buffer.from("\0\0\0\x0bssh-ed25519xxxx").toString("base64")),
    "nodes[2].ssh.hostKey",
    /ssh-keyscan/,
  ],
  ["unknown role", (r) => (r.nodes[0].role = "master"), "nodes[0].role", /server \| agent/],
  ["unknown hardware", (r) => (r.nodes[0].hardware = "rpi5"), "nodes[0].hardware", /jetson-orin-nano/],
  ["arch contradicts hardware", (r) => (r.nodes[0].arch = "x86_64"), "nodes[0].arch", /does not match hardware turing-rk1/],
  ["tpi node without wic", (r) => delete r.artifacts["turing-rk1"].wic, "nodes[0].delivery", /artifacts\.turing-rk1\.wic/],
  ["pin without source", (r) => delete r.artifacts["turing-rk1"].kernel.path, "artifacts.turing-rk1.kernel", /set `path`/],
  ["pin with non-http url", (r) => (r.artifacts["jetson-orin-nano"].rootfs.url = "ftp://x/y"), "artifacts.jetson-orin-nano.rootfs.url", /http\(s\)/],
  ["bad CIDR", (r) => (r.k3s = { clusterCidr: "10.42.0.0/33" }), "k3s.clusterCidr", /CIDR/],
  ["kubelet arg with shell", (r) => (r.k3s = { kubeletArgs: ["--max-pods 5; reboot"] }), "k3s.kubeletArgs[0]", /name=value/],
  ["blank postJoinCommand", (r) => (r.nodes[1].postJoinCommand = "  "), "nodes[1].postJoinCommand", /non-empty shell command/],
  ["removed k3s.tokenSource", (r) => (r.k3s = { tokenSource: "builtin" }), "k3s.tokenSource", /pulumi config set --secret isar-k3s:clusterToken/],
  ["missing certificate for swupdate nodes", (r) => delete r.swupdate.certificate, "swupdate.certificate", /srv3, jetson1/],
  ["unknown key (typo)", (r) => (r.nodes[0].adress = "1.2.3.4"), "nodes[0].adress", /unknown key/],
  ["bad selection", (r) => (r.nodes[3].delivery.selection = "stable main"), "nodes[3].delivery.selection", /"stable,main"/],
  ["vlans without storage address", (r) => (r.network = { profile: "vlans" }), "nodes[0].storageAddress", /VLAN 100/],
  ["same VLAN twice", (r) => (r.network = { profile: "vlans", k3sVlan: 100 }), "network.storageVlan", /two different VLAN ids/],
  ["authorized key garbage", (r) => (r.authorizedKeys = ["not a key"]), "authorizedKeys[0]", /\.pub/],
  ["no authorized keys", (r) => delete r.authorizedKeys, "authorizedKeys", /is required/],
  ["root device not under /dev", (r) => (r.nodes[3].delivery.rootDevice = "mmcblk0p1; reboot"), "nodes[3].delivery.rootDevice", /block device path/],
  ["unknown images.pkgsSource", (r) => (r.images = { pkgsSource: "guix" }), "images.pkgsSource", /nixpkgs \| host/],
  ["node and BMC share endpoint", (r) => (r.nodes[0].address = "10.0.0.2"), "nodes[0].address", /bmcs\[0\]/],
];

describe("parseFleet rejects bad configs, naming the path", () => {
  test.each(BAD)("%s", (_name, mutate, path, fix) => expectProblemAt(mutate, path, fix));

  test("the table is at least 25 cases", () => {
    expect(BAD.length).toBeGreaterThanOrEqual(25);
  });

  test("all problems are reported at once, in one error that names each path", () => {
    const raw = validRaw();
    raw.nodes[0].address = "1.2.3";
    raw.nodes[1].hostname = "bad host";
    raw.artifacts["turing-rk1"].rootfs.sha256 = "zz";
    let err: FleetConfigError | undefined;
    try {
      parseFleet(raw);
    } catch (e) {
      err = e as FleetConfigError;
    }
    expect(err).toBeInstanceOf(FleetConfigError);
    expect(err!.problems.map((p) => p.path)).toEqual(expect.arrayContaining(["nodes[0].address", "nodes[1].hostname", "artifacts.turing-rk1.rootfs.sha256"]));
    expect(err!.message).toContain("3 problems");
    expect(err!.message).toContain('nodes[0].address: "1.2.3" is not an IPv4 address');
  });
});

describe("checks", () => {
  test("normalizeSha256 accepts hex and SRI, refuses others", () => {
    expect(normalizeSha256(HEX.toUpperCase())).toBe(HEX);
    const sri = hexToSri("00".repeat(31) + "ff");
    expect(sri).toBe("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=");
    expect(normalizeSha256(sri)).toBe("00".repeat(31) + "ff");
    expect(normalizeSha256("sha512-" + "A".repeat(43) + "=")).toBeUndefined();
    expect(normalizeSha256("g".repeat(64))).toBeUndefined();
  });

  test("isOpenSshPublicKey checks the blob's embedded type", () => {
    const { execFileSync } = require("child_process");
    const fs = require("fs");
    const os = require("os");
    const dir = fs.mkdtempSync(`${os.tmpdir()}/k-`);
    execFileSync("ssh-keygen", ["-q", "-t", "ecdsa", "-N", "", "-f", `${dir}/k`]);
    const line = fs.readFileSync(`${dir}/k.pub`, "utf8").trim();
    fs.rmSync(dir, { recursive: true });
    expect(isOpenSshPublicKey(line)).toBe(true);
    expect(isOpenSshPublicKey(line.replace("ecdsa-sha2-nistp256", "ssh-ed25519"))).toBe(false);
    expect(isOpenSshPublicKey(line + "\nssh-ed25519 AAAA")).toBe(false);
  });
});

test("an invalid slot is reported once, not also as a duplicate", () => {
  const ps = problems((r) => (r.nodes[1].delivery.slot = 5));
  expect(ps.filter((p) => p.path === "nodes[1].delivery.slot")).toHaveLength(1);
});
