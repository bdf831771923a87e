/**
 * The IsarArtifact / IsarBuild classes under Pulumi mocks: type tokens, the defaults they fill in, and that
 * an argument passed as undefined does not wipe a default.
 */
import * as pulumi from "@pulumi/pulumi";

const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: { ...args.inputs, storePath: "/nix/store/x-y" } };
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

test("IsarArtifact: type token, defaults (name, projectDir, stack), undefined args ignored", async () => {
  const { IsarArtifact } = await import("../../providers/isar");
  const a = new IsarArtifact("rk1-rootfs", {
    machine: "turing-rk1",
    version: "1",
    kind: "rootfs",
    sha256: "0".repeat(64),
    path: "x.tar.gz",
    url: undefined,
    projectDir: undefined,
  });
  expect(await value(a.storePath)).toBe("/nix/store/x-y");
  const r = registered.find((x) => x.name === "rk1-rootfs")!;
  expect(r.type).toBe("pulumi-nodejs:dynamic/isar-k3s:IsarArtifact");
  expect(r.inputs).toMatchObject({ name: "rk1-rootfs", projectDir: process.cwd(), stack: "mockstack", path: "x.tar.gz" });
  expect("url" in r.inputs).toBe(false);
});

test("IsarBuild: defaults (engine, timeout, network, recipe, distro) survive undefined args", async () => {
  const { IsarBuild } = await import("../../providers/isar");
  const b = new IsarBuild("b", {
    kasDir: "isar",
    machine: "qemu-amd64",
    image: "k3s-server",
    arch: "x86_64",
    engine: undefined,
    timeoutSeconds: undefined,
    network: undefined,
  });
  await value(b.urn);
  const r = registered.find((x) => x.name === "b")!;
  expect(r.type).toBe("pulumi-nodejs:dynamic/isar-k3s:IsarBuild");
  expect(r.inputs).toMatchObject({
    engine: "podman",
    timeoutSeconds: 21600,
    network: "simple",
    imageRecipe: "isar-image-base",
    distro: "debian-trixie",
    projectDir: process.cwd(),
  });
});
