import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderKnownHosts } from "../../lib/render/known-hosts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z srv1 host key";

test("one line per node with a key, port 22 bare, other ports bracketed, comments dropped", () => {
  expect(renderKnownHosts([{ address: "127.77.0.11", hostKey: KEY }, { address: "10.0.0.2", port: 2222, hostKey: KEY }, { address: "10.0.0.3" }])).toBe(
    "127.77.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z\n" +
      "[10.0.0.2]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z\n",
  );
  expect(renderKnownHosts([{ address: "x" }])).toBe("");
  expect(() => renderKnownHosts([{ address: "x", hostKey: "nonsense" }])).toThrow(/x is not an OpenSSH public key line/);
});

test("ssh-keygen -F finds each host in the rendered file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "known-hosts-"));
  try {
    const f = path.join(dir, "known_hosts");
    fs.writeFileSync(
      f,
      renderKnownHosts([
        { address: "127.77.0.11", hostKey: KEY },
        { address: "10.0.0.2", port: 2222, hostKey: KEY },
      ]),
    );
    expect(execFileSync("ssh-keygen", ["-F", "127.77.0.11", "-f", f]).toString()).toContain("ssh-ed25519");
    expect(execFileSync("ssh-keygen", ["-F", "[10.0.0.2]:2222", "-f", f]).toString()).toContain("ssh-ed25519");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
