/**
 * The Turing Pi lab fixture shared by the tpi suites: a BMC with two slot nodes (n1 in slot 1, n2 in
 * slot 2), three node images, and helpers to build flash specs / provider inputs and to look at hosts.
 */
import * as fs from "fs";
import * as path from "path";
import type { Lab } from "../../lab/lab";
import { connectSsh } from "../../lib/transport/ssh";
import type { TpiFlashSpec } from "../../lib/delivery/tpi";
import type { TpiInputs } from "../../lib/delivery/delivery-provider";
import { TestImage, labLogCount, makeNodeImage, startLabRetry, tempDir } from "./labutil";

export const IMAGE_DIR = "/mnt/sdcard/images";

export class TpiLab {
  lab!: Lab;
  dir!: string;
  imgA!: TestImage;
  imgA2!: TestImage;
  imgB!: TestImage;

  async start(prefix: string): Promise<void> {
    this.dir = await tempDir(prefix);
    this.lab = await startLabRetry(
      {
        hosts: [
          { name: "bmc", role: "bmc" },
          { name: "n1", role: "node", tpi: { bmc: "bmc", slot: 1 } },
          { name: "n2", role: "node", tpi: { bmc: "bmc", slot: 2 } },
        ],
        flashRateMBps: 20, // 16 MiB ≈ 0.8 s: long enough to see flash progress
        bootDelayMs: 100,
        bmcdPort: 8080,
      },
      path.join(this.dir, "lab"),
    );
    const key = this.lab.deployKey.publicKey;
    this.imgA = await makeNodeImage(this.dir, { name: "a", hostname: "rk1-srv1", authorizedKey: key });
    this.imgA2 = await makeNodeImage(this.dir, { name: "a2", hostname: "rk1-srv1", authorizedKey: key, extra: "node-label:\n  - zone=b\n" });
    this.imgB = await makeNodeImage(this.dir, { name: "b", hostname: "rk1-agent2", authorizedKey: key });
  }

  async stop(): Promise<void> {
    await this.lab?.stop();
    // maxRetries: the lab's last log lines may still land while the tree is removed (ENOTEMPTY).
    if (this.dir) await fs.promises.rm(this.dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }

  get creds(): { privateKey: string } {
    return { privateKey: this.lab.deployKey.privateKey };
  }

  emmc(slot: number): string {
    return path.join(this.lab.dir, "bmc-bmc", `slot${slot}.img`);
  }

  /** How many flashes of `slot` the BMC has logged. */
  flashes(slot: number): number {
    return labLogCount(this.lab.dir, new RegExp(`bmcd bmc: #\\d+ 'Node${slot} os install service' .* - started`));
  }

  spec(node: "n1" | "n2", img: TestImage, over: Partial<TpiFlashSpec> = {}): TpiFlashSpec {
    const b = this.lab.hosts.bmc;
    const n = this.lab.hosts[node];
    return {
      nodeName: node,
      hostname: img.hostname,
      slot: n.tpi!.slot,
      bmc: { name: "bmc", address: b.address, port: b.port, user: b.user, hostKey: b.hostKey, imageDir: IMAGE_DIR },
      node: { address: n.address, port: n.port, user: n.user },
      image: { path: img.path, sha256: img.sha256, imageId: img.imageId },
      flashTimeoutSeconds: 60,
      bootTimeoutSeconds: 30,
      connectTimeoutSeconds: 10,
      pollIntervalMs: 100,
      ...over,
    };
  }

  inputs(node: "n1" | "n2", img: TestImage, over: Partial<TpiInputs> = {}): TpiInputs {
    const s = this.spec(node, img);
    return {
      kind: "tpi",
      nodeName: s.nodeName,
      hostname: s.hostname,
      slot: s.slot,
      bmc: s.bmc,
      node: s.node,
      image: s.image,
      sources: { "rootfs sha256": img.sha256 },
      flashTimeoutSeconds: 60,
      bootTimeoutSeconds: 30,
      connectTimeoutSeconds: 10,
      sshPrivateKey: this.lab.deployKey.privateKey,
      ...over,
    };
  }

  /** Run argv on a host (BMC: pinned key; slot node: the given key). */
  async on(host: string, argv: string[], hostKey?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const h = this.lab.hosts[host];
    const c = await connectSsh({
      host: h.address,
      port: h.port,
      user: h.user,
      hostKey: hostKey ?? h.hostKey,
      privateKey: this.lab.deployKey.privateKey,
      retryForMs: 5000,
    });
    try {
      const r = await c.run(argv);
      return { code: r.code, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
    } finally {
      await c.close();
    }
  }

  async bmcImages(): Promise<string[]> {
    const r = await this.on("bmc", ["ls", "-1", IMAGE_DIR]);
    return r.stdout
      .split("\n")
      .filter((l) => l)
      .sort();
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure, but it succeeded");
}
