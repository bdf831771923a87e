/**
 * What this machine's e2fsprogs (1.47.0) does about reproducibility, which nix/builder/compose-image.sh
 * relies on: SOURCE_DATE_EPOCH is ignored and E2FSPROGS_FAKE_TIME honoured for superblock times; `-d`
 * copies atime/ctime from the source tree, so two runs differ until ext4-fix-times.awk resets them;
 * debugfs `set_current_time` pins the times of what it writes.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { sh } from "./fixtures";

const ROOT = path.resolve(__dirname, "../..");
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mke2fs-facts-"));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const UUID = "0b1e2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3";

function mkfs(img: string, tree: string | null, env: NodeJS.ProcessEnv): void {
  fs.writeFileSync(img, "");
  fs.truncateSync(img, 16 << 20);
  const args = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-T", "default", "-U", UUID, "-E", `hash_seed=${UUID},root_owner=0:0,lazy_itable_init=0,nodiscard`];
  if (tree) args.push("-d", tree);
  sh([...args, img], { env: { ...process.env, ...env } });
}

function tree(dir: string): string {
  fs.mkdirSync(path.join(dir, "etc"), { recursive: true });
  fs.writeFileSync(path.join(dir, "etc/a"), "a\n");
  for (const p of ["etc/a", "etc", "."]) fs.utimesSync(path.join(dir, p), 100, 100); // same mtimes, different ctimes
  return dir;
}

test("SOURCE_DATE_EPOCH is ignored by mke2fs 1.47.0; E2FSPROGS_FAKE_TIME is honoured", () => {
  const a = path.join(tmp, "sde.img");
  mkfs(a, null, { SOURCE_DATE_EPOCH: "1000" });
  expect(sh(["dumpe2fs", "-h", a])).not.toMatch(/Filesystem created: +Thu Jan {2}1 00:16:40 1970/);
  const b = path.join(tmp, "fake.img");
  mkfs(b, null, { E2FSPROGS_FAKE_TIME: "1000" });
  expect(sh(["dumpe2fs", "-h", b])).toMatch(/Filesystem created: +Thu Jan {2}1 00:16:40 1970/);
});

test("-d copies ctime from the tree: identical trees made at different times differ until the times are reset", async () => {
  const t1 = tree(path.join(tmp, "t1"));
  await new Promise((r) => setTimeout(r, 1100)); // a different ctime second for the second tree
  const t2 = tree(path.join(tmp, "t2"));
  const i1 = path.join(tmp, "t1.img");
  const i2 = path.join(tmp, "t2.img");
  mkfs(i1, t1, { E2FSPROGS_FAKE_TIME: "1" });
  mkfs(i2, t2, { E2FSPROGS_FAKE_TIME: "1" });
  expect(fs.readFileSync(i1).equals(fs.readFileSync(i2))).toBe(false);
  expect(sh(["debugfs", "-R", "stat /etc/a", i1])).not.toMatch(/ ctime: 0x00000001:/);
  for (const img of [i1, i2]) {
    const cmds = sh(["awk", "-v", "epoch=1", "-f", path.join(ROOT, "nix/builder/ext4-fix-times.awk")], { input: sh(["dumpe2fs", img]) });
    expect(cmds).toMatch(/^sif <2> atime @1$/m);
    fs.writeFileSync(`${img}.cmds`, cmds);
    sh(["debugfs", "-w", "-f", `${img}.cmds`, img]);
  }
  expect(sh(["debugfs", "-R", "stat /etc/a", i1])).toMatch(/ ctime: 0x00000001:/);
  expect(sh(["debugfs", "-R", "stat /etc/a", i1])).toMatch(/ mtime: 0x00000064:/); // mtime kept from the tree (100)
  expect(fs.readFileSync(i1).equals(fs.readFileSync(i2))).toBe(true);
  sh(["e2fsck", "-fn", i1]);
});

test("debugfs set_current_time pins the times of files it writes", () => {
  const src = path.join(tmp, "src.txt");
  fs.writeFileSync(src, "x\n");
  const imgs = [path.join(tmp, "w1.img"), path.join(tmp, "w2.img")];
  for (const img of imgs) {
    mkfs(img, null, { E2FSPROGS_FAKE_TIME: "1" });
    fs.writeFileSync(`${img}.cmds`, `set_current_time @1\nmkdir /etc\nwrite ${src} /etc/f\n`);
    sh(["debugfs", "-w", "-f", `${img}.cmds`, img]);
    fs.utimesSync(src, new Date(), new Date()); // the source's own times must not matter
  }
  expect(sh(["debugfs", "-R", "stat /etc/f", imgs[0]])).toMatch(/crtime: 0x00000001:/);
  expect(fs.readFileSync(imgs[0]).equals(fs.readFileSync(imgs[1]))).toBe(true);
});
