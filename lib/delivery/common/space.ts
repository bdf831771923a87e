/**
 * The space check before an upload (to a BMC's image directory or a node's bundle directory): refuse up
 * front, with the numbers, when the target file system cannot hold what is still to be sent (an
 * unmounted SD card leaves a BMC's small root file system). A finished copy of the same size needs no
 * room; a partial copy only needs the rest. A report that cannot be read is no refusal: the upload
 * itself then fails with its own message.
 */
import * as fs from "fs";
import type { Host } from "../../transport/host";
import { DeliveryError, asDeliveryError } from "./errors";

/** Prints "avail <KiB>", "final <bytes>", "partial <bytes>" for the directory ($1) and file path ($2). */
export const SPACE_SCRIPT =
  'mkdir -p "$1" || exit 1; ' +
  'echo "avail $(df -Pk "$1" | tail -n 1 | awk \'{print $4}\')"; ' +
  'if [ -f "$2" ]; then echo "final $(wc -c < "$2")"; else echo "final -1"; fi; ' +
  'if [ -f "$2.partial" ]; then echo "partial $(wc -c < "$2.partial")"; else echo "partial 0"; fi';

/** Parse SPACE_SCRIPT's output. */
export function parseSpaceReport(out: string): { availableBytes: number; finalSize: number; partialSize: number } | undefined {
  const get = (k: string) => {
    const m = new RegExp(`^${k} (-?\\d+)\\s*$`, "m").exec(out);
    return m ? Number(m[1]) : undefined;
  };
  const avail = get("avail");
  const final = get("final");
  const partial = get("partial");
  if (avail === undefined || final === undefined || partial === undefined) return undefined;
  return { availableBytes: avail * 1024, finalSize: final, partialSize: partial };
}

/** "12.3 MiB". */
export function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

export interface RoomCheck {
  /** Node name and where (for the DeliveryError). */
  node: string;
  where: string;
  /** The local file to upload. */
  localPath: string;
  /** Directory on the host and the file's path there. */
  dir: string;
  remotePath: string;
  /** Reason and hint when the room is short, from the free and the needed sizes ("12.3 MiB"). */
  short(free: string, needed: string): { reason: string; hint: string };
  /** Hint when the check itself fails (e.g. the local file is missing). */
  failureHint: string;
}

/** Throws a DeliveryError (phase "upload") when `c.dir` on `host` has no room for the rest of `c.localPath`. */
export async function ensureRoom(host: Host, c: RoomCheck): Promise<void> {
  try {
    const size = (await fs.promises.stat(c.localPath)).size;
    const r = await host.run(["sh", "-c", SPACE_SCRIPT, "sh", c.dir, c.remotePath], { timeoutMs: 60_000 });
    const space = parseSpaceReport(r.stdout.toString("utf8"));
    if (r.code !== 0 || !space) return;
    const needed = space.finalSize === size ? 0 : size - space.partialSize;
    if (space.availableBytes < needed) {
      const m = c.short(mib(space.availableBytes), mib(needed));
      throw new DeliveryError(c.node, "upload", c.where, m.reason, "", m.hint);
    }
  } catch (e) {
    if (e instanceof DeliveryError) throw e;
    throw asDeliveryError(e, c.node, "upload", c.where, c.failureHint);
  }
}
