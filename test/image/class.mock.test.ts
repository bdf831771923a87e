/** The NodeImage class under Pulumi mocks: type token, nodeName default, undefined args not passed. */
import * as pulumi from "@pulumi/pulumi";

const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: { ...args.inputs, storePath: "/nix/store/x-node-image-n1", imageId: "f".repeat(32) } };
      },
      call: (args) => args.inputs,
    },
    "isar-k3s",
    "mockstack",
  );
});

async function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

test("NodeImage: type token, nodeName defaults to the resource name, outputs exposed", async () => {
  const { NodeImage } = await import("../../providers/image");
  const art = { storePath: `/nix/store/${"a".repeat(32)}-r.tar.gz`, sha256: "b".repeat(64) };
  const img = new NodeImage("n1", {
    hardware: "qemu-amd64",
    arch: "x86_64",
    role: "server",
    artifacts: { rootfs: art, kernel: art },
    files: [{ path: "/etc/hostname", content: "n1\n", mode: 0o644, uid: 0, gid: 0 }],
    headroomPercent: undefined,
  });
  expect(await value(img.storePath)).toBe("/nix/store/x-node-image-n1");
  expect(await value(img.imageId)).toBe("f".repeat(32));
  const r = registered.find((x) => x.name === "n1")!;
  expect(r.type).toBe("pulumi-nodejs:dynamic/isar-k3s:NodeImage");
  expect(r.inputs).toMatchObject({ nodeName: "n1", hardware: "qemu-amd64", role: "server" });
  expect("headroomPercent" in r.inputs).toBe(false);
});
