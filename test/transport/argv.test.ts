import { execFileSync } from "child_process";
import { shellQuote, shellQuoteArgv } from "../../lib/transport/argv";
import { ECHO_ARGS_SCRIPT, HOSTILE, parseEchoed } from "./hostile";

describe("shellQuoteArgv", () => {
  test("wraps each word in single quotes and escapes embedded quotes", () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote("")).toBe("''");
    expect(shellQuoteArgv(["ls", "-l", "a b"])).toBe("'ls' '-l' 'a b'");
  });

  test("refuses NUL bytes and empty argv", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
    expect(() => shellQuoteArgv([])).toThrow(/empty command/);
  });

  test.each(["sh", "bash", "dash", "busybox"])("%s -c parses the quoted text back to the exact argv", (shell) => {
    const argv = ["sh", "-c", ECHO_ARGS_SCRIPT, "sh", ...HOSTILE];
    const text = shellQuoteArgv(argv);
    const cmd = shell === "busybox" ? ["busybox", "sh", "-c", text] : [shell, "-c", text];
    const out = execFileSync(cmd[0], cmd.slice(1), { env: { LC_ALL: "C", PATH: process.env.PATH } }).toString();
    expect(parseEchoed(out)).toEqual(HOSTILE);
  });
});
