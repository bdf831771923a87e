/**
 * What a SWUpdate node's image carries so that an OS update keeps the cluster member and the board's
 * identity (issue 15, items 4 and 6): the persistent data partition's units (checked with the real
 * `systemd-analyze verify`), k3s ordered after its state, the SWUpdate certificate of the image (the next
 * one during a rotation), no /etc/hwrevision; and the model's knobs (dataDevice, rejoin, nextCertificate)
 * with their validation.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseFleet } from "../../lib/model/parse";
import { deploymentPlan } from "../../lib/plan/plan";
import { renderNodeFiles, SWUPDATE_CERT_PATH } from "../../lib/render/node-files";
import { DATA_MOUNT, renderPersistFiles } from "../../lib/render/persist";
import { validRaw } from "../model/fixtures";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "d15-persist-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NEXT = "-----BEGIN CERTIFICATE-----\nMIIC-next\n-----END CERTIFICATE-----\n";

function problems(mut: (raw: ReturnType<typeof validRaw>) => void): string {
  const raw = validRaw();
  mut(raw);
  try {
    parseFleet(raw);
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}

describe("persistent data partition of a SWUpdate node", () => {
  const fleet = parseFleet(validRaw());
  const sw = fleet.nodes[3];

  test("units: the partition, its directories, the binds of k3s's state and the board's hwrevision; k3s requires them", () => {
    expect(sw.delivery.method).toBe("swupdate");
    const files = renderPersistFiles(sw);
    expect(Object.keys(files).sort()).toEqual([
      "/etc/systemd/system/dev-mmcblk0p3.device.d/isar-k3s-timeout.conf",
      "/etc/systemd/system/etc-hwrevision.mount",
      "/etc/systemd/system/etc-rancher.mount",
      "/etc/systemd/system/isar-k3s-data-dirs.service",
      "/etc/systemd/system/k3s-agent.service.d/isar-k3s-persist.conf",
      "/etc/systemd/system/k3s.service.d/isar-k3s-persist.conf",
      "/etc/systemd/system/local-fs.target.d/isar-k3s-persist.conf",
      "/etc/systemd/system/var-lib-isar\\x2dk3s\\x2ddata.mount",
      "/etc/systemd/system/var-lib-rancher.mount",
    ]);
    expect(files["/etc/systemd/system/var-lib-isar\\x2dk3s\\x2ddata.mount"]).toMatch(
      /^What=\/dev\/mmcblk0p3\nWhere=\/var\/lib\/isar-k3s-data\nType=ext4\nOptions=defaults,nofail$/m,
    );
    expect(files["/etc/systemd/system/var-lib-rancher.mount"]).toMatch(
      /^What=\/var\/lib\/isar-k3s-data\/rancher\nWhere=\/var\/lib\/rancher\nType=none\nOptions=bind,nofail$/m,
    );
    expect(files["/etc/systemd/system/etc-rancher.mount"]).toMatch(/^What=\/var\/lib\/isar-k3s-data\/etc-rancher\nWhere=\/etc\/rancher$/m);
    expect(files["/etc/systemd/system/etc-hwrevision.mount"]).toMatch(/^ConditionPathExists=\/var\/lib\/isar-k3s-data\/hwrevision$/m);
    expect(files["/etc/systemd/system/isar-k3s-data-dirs.service"]).toMatch(
      /^ExecStart=\/bin\/mkdir -p \/var\/lib\/isar-k3s-data\/rancher \/var\/lib\/isar-k3s-data\/etc-rancher$/m,
    );
    for (const u of ["k3s", "k3s-agent"])
      expect(files[`/etc/systemd/system/${u}.service.d/isar-k3s-persist.conf`]).toMatch(/^RequiresMountsFor=\/var\/lib\/rancher \/etc\/rancher$/m);
    // tpi nodes: none (a flash rewrites the whole eMMC)
    expect(renderPersistFiles(fleet.nodes[0])).toEqual({});
    // the image carries them
    const paths = renderNodeFiles(fleet, deploymentPlan(fleet), sw).map((f) => f.path);
    for (const p of Object.keys(files)) expect(paths).toContain(p);
    expect(DATA_MOUNT).toBe("/var/lib/isar-k3s-data");
  });

  test("every unit passes systemd-analyze verify", () => {
    const dir = path.join(tmp, "units");
    fs.mkdirSync(dir, { recursive: true });
    const units: string[] = [];
    for (const [p, content] of Object.entries(renderPersistFiles(sw))) {
      if (p.includes(".d/")) continue;
      const f = path.join(dir, path.basename(p));
      fs.writeFileSync(f, content);
      units.push(f);
    }
    expect(units).toHaveLength(5);
    for (const f of units) {
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", f], { encoding: "utf8" });
      const mine = r.stderr
        .split("\n")
        .filter((l) => l.includes(path.basename(f)))
        .join("\n");
      expect({ unit: path.basename(f), status: r.status, stderr: mine }).toEqual({ unit: path.basename(f), status: 0, stderr: "" });
    }
  });

  test("dataDevice: default per hardware, configurable, never a root device or a data disk", () => {
    const raw = validRaw();
    raw.nodes[3].delivery = { method: "swupdate", selection: "stable,main", altRootDevice: "/dev/mmcblk0p2", dataDevice: "/dev/mmcblk0p4" };
    const n = parseFleet(raw).nodes[3];
    expect(n.delivery.method === "swupdate" && n.delivery.dataDevice).toBe("/dev/mmcblk0p4");
    expect(renderPersistFiles(n)["/etc/systemd/system/var-lib-isar\\x2dk3s\\x2ddata.mount"]).toMatch(/^What=\/dev\/mmcblk0p4$/m);
    expect(problems((r) => (r.nodes[3].delivery = { method: "swupdate", altRootDevice: "/dev/mmcblk0p2", dataDevice: "/dev/mmcblk0p2" }))).toMatch(
      /nodes\[3\]\.delivery\.dataDevice: \/dev\/mmcblk0p2 is also a root device: the persistent data partition must be one that image updates never write/,
    );
    expect(
      problems((r) => {
        r.nodes[3].dataDisks = [{ device: "/dev/mmcblk0p3", mountPoint: "/var/lib/longhorn" }];
      }),
    ).toMatch(/nodes\[3\]\.dataDisks\[0\]\.device/);
  });

  test("rejoin: an integer >= 0, default 0", () => {
    expect(parseFleet(validRaw()).nodes[3].rejoin).toBe(0);
    const raw = validRaw();
    raw.nodes[3].rejoin = 2;
    expect(parseFleet(raw).nodes[3].rejoin).toBe(2);
    expect(problems((r) => (r.nodes[3].rejoin = -1))).toMatch(/nodes\[3\]\.rejoin: number -1 must be an integer from 0 to 1000000/);
    expect(problems((r) => (r.nodes[3].rejoin = "again"))).toMatch(/nodes\[3\]\.rejoin: .* must be an integer/);
  });
});

describe("SWUpdate certificate in the image", () => {
  test("a SWUpdate node's image carries swupdate.certificate; during a rotation the next one", () => {
    const fleet = parseFleet(validRaw());
    const cert = (f: typeof fleet) => renderNodeFiles(f, deploymentPlan(f), f.nodes[3]).find((x) => x.path === SWUPDATE_CERT_PATH);
    expect(cert(fleet)).toMatchObject({ mode: 0o644, uid: 0, content: fleet.swupdate.certificate });
    const raw = validRaw();
    (raw.swupdate as Record<string, unknown>).nextCertificate = NEXT;
    const rotating = parseFleet(raw);
    expect(cert(rotating)?.content).toBe(NEXT);
    // tpi nodes do not carry one (they are never updated with SWUpdate)
    expect(renderNodeFiles(fleet, deploymentPlan(fleet), fleet.nodes[0]).find((x) => x.path === SWUPDATE_CERT_PATH)).toBeUndefined();
  });

  test("nextCertificate: must be a PEM certificate other than the current one", () => {
    expect(problems((r) => ((r.swupdate as Record<string, unknown>).nextCertificate = "not pem"))).toMatch(
      /swupdate\.nextCertificate: is not a PEM certificate/,
    );
    expect(problems((r) => ((r.swupdate as Record<string, unknown>).nextCertificate = (r.swupdate as Record<string, string>).certificate))).toMatch(
      /swupdate\.nextCertificate: equals swupdate\.certificate: rotation is finished, remove nextCertificate/,
    );
  });
});
