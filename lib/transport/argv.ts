/**
 * The one place where an argv array becomes shell text.
 *
 * SSH has no argv: the server hands the command string to the remote user's login shell (`$SHELL -c
 * STRING`). So every remote command is built here, once: each argument is wrapped in POSIX single quotes
 * (a `'` inside becomes `'\''`) and the quoted words are joined with spaces. A POSIX shell (sh, bash,
 * dash, busybox ash) turns that text back into exactly the original argv: no expansion ($, `, *, ~),
 * no word splitting, newlines and non-ASCII kept, the empty string kept as an empty argument.
 *
 * Guarantees: `shellQuoteArgv(argv)` parsed by a POSIX shell yields `argv` byte for byte. NUL bytes cannot
 * be carried by any exec interface and are refused with an error naming the argument.
 */

/** Quote one word for a POSIX shell. */
export function shellQuote(arg: string): string {
  if (arg.includes("\0")) {
    throw new Error(`argument ${JSON.stringify(arg.slice(0, 40))} contains a NUL byte, which no command line can carry: remove it`);
  }
  return "'" + arg.replace(/'/g, "'\\''") + "'";
}

/** Quote each argument and join: the command text to hand to `sh -c` (or to an SSH exec request). */
export function shellQuoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error("empty command: argv needs at least the program name");
  return argv.map(shellQuote).join(" ");
}
