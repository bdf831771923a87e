/**
 * The project root: the nearest directory at or above `start` holding Pulumi.yaml. Relative paths in
 * stack config (artifact pins, manifests) are relative to it, whatever directory Pulumi runs the
 * compiled program from (bin/).
 */
import * as fs from "fs";
import * as path from "path";

export function projectRoot(start: string = process.cwd()): string {
  let dir = path.resolve(start);
  for (;;) {
    if (fs.existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no Pulumi.yaml in ${start} or any directory above it: run from the isar-k3s project`);
    dir = up;
  }
}
