/**
 * Root on a node through its deploy user: the one place that turns a command into `sudo -n -- argv`.
 *
 * Contract:
 * - SshHost (./ssh.ts) prefixes every command of a non-root login with SUDO_PREFIX (uploads, reads and
 *   hashes are commands there too), so every remote step on a node runs as root and files it writes are
 *   root's. `-n`: sudo never prompts; where it would, it fails at once.
 * - `sudoFailure` recognises sudo's own refusals in a command's result (a password is required, no
 *   sudo rights, no sudo installed) and returns a SudoError that names the host and the fix; other
 *   results are the command's own and are left alone.
 */
import { HostError, RunResult } from "./host";

export const SUDO_PREFIX = ["sudo", "-n", "--"];

export class SudoError extends HostError {
  constructor(message: string, host: string, result: RunResult) {
    super(message, host, result);
    this.name = "SudoError";
  }
}

const FIX = (user: string) =>
  `images built by isar-k3s carry /etc/sudoers.d/isar-k3s-${user} ("${user} ALL=(root) NOPASSWD: ALL"); on a node installed otherwise, add that line on its console with \`visudo -f /etc/sudoers.d/isar-k3s-${user}\`, then run \`pulumi up\` again`;

/** A SudoError when `res` is sudo refusing to run the command, else undefined. */
export function sudoFailure(label: string, user: string, argv: string[], res: RunResult): SudoError | undefined {
  const err = res.stderr.toString("utf8");
  const what = `\`${argv.join(" ")}\``;
  if (res.code === 1 && /^sudo: (a password is required|a terminal is required)/m.test(err)) {
    return new SudoError(
      `${label}: sudo asks ${user} for a password, and every remote step runs as root through \`sudo -n\`, which never prompts (${what} was not run). Give ${user} passwordless sudo: ${FIX(user)}`,
      label,
      res,
    );
  }
  if (res.code === 1 && /^(sudo: )?\S+ is not in the sudoers file|^Sorry, user \S+ is not allowed to execute/m.test(err)) {
    return new SudoError(
      `${label}: ${user} may not use sudo, and every remote step runs as root through \`sudo -n\` (${what} was not run). Give ${user} passwordless sudo: ${FIX(user)}`,
      label,
      res,
    );
  }
  if (res.code === 127 && /sudo: (not found|No such file)|sudo: command not found/.test(err)) {
    return new SudoError(
      `${label}: sudo is not installed, and every remote step of the non-root login ${user} runs through \`sudo -n\` (${what} was not run): install sudo in the image (ISAR: IMAGE_PREINSTALL += "sudo")`,
      label,
      res,
    );
  }
  return undefined;
}
