/** Test helper: hostile command-line arguments and a way to echo them back exactly. */
/** Arguments meant to break naive quoting. */
export const HOSTILE: string[] = [
  "",
  "plain",
  "it's",
  "'",
  "''",
  '"double"',
  "$(touch /tmp/pwned-by-argv-test)",
  "`id`",
  "a; rm -rf /nonexistent-argv-test",
  "x && echo injected",
  "line1\nline2\n",
  "tab\there",
  "back\\slash\\",
  "*",
  "~root",
  "$HOME ${PATH}",
  "-n",
  "--",
  "ünïcødé ✓ 日本",
  " leading and trailing ",
  "!bang",
  "#comment",
  "a|b>c<d&e",
];

/** Print each argv entry length-prefixed so that the test can parse it back exactly. */
export const ECHO_ARGS_SCRIPT = 'for a in "$@"; do printf "%s:%s\\n" "${#a}" "$a"; done';

export function parseEchoed(out: string): string[] {
  const res: string[] = [];
  let s = out;
  while (s.length) {
    const colon = s.indexOf(":");
    const n = Number(s.slice(0, colon));
    // ${#a} counts characters in the shell's locale; the C locale counts bytes
    const rest = Buffer.from(s.slice(colon + 1));
    const val = rest.subarray(0, n).toString();
    res.push(val);
    s = rest.subarray(n + 1).toString();
  }
  return res;
}
