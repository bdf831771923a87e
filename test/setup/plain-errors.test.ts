import { execFileSync } from "child_process";
import { plainError } from "./plain-errors";

describe("errors reaching jest from workers", () => {
  test("a child_process error (circular) becomes a serializable error with its cause", () => {
    let caught: unknown;
    try {
      execFileSync("isar-k3s-no-such-tool", ["-v"], { stdio: "pipe" });
    } catch (e) {
      caught = e;
    }
    expect(() => JSON.stringify(caught)).toThrow(/circular/);
    const plain = plainError(caught) as Error;
    expect(() => JSON.stringify(plain)).not.toThrow();
    expect(plain.message).toBe("spawnSync isar-k3s-no-such-tool ENOENT (code ENOENT)");
    expect(plain.stack).toContain("plain-errors.test.ts");
  });

  test("serializable errors and non-errors pass unchanged", () => {
    const e = new Error("plain");
    expect(plainError(e)).toBe(e);
    expect(plainError("text")).toBe("text");
  });
});
