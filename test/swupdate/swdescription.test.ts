/**
 * sw-description renderer: the output is parsed back with a small libconfig reader written here (groups,
 * lists, arrays, strings with escapes, integers, booleans; `=` and `:`), and checked structurally.
 * That swupdate's own libconfig reads it is covered in bundle.test.ts.
 */
import { SwDescriptionError, SwDescriptionInput, libconfigString, renderSwDescription } from "../../lib/swupdate/swdescription";

type LcValue = string | number | boolean | LcValue[] | { [k: string]: LcValue };

/** Tiny libconfig reader for the tests. Lists "( )" and arrays "[ ]" both become JS arrays. */
function parseLibconfig(text: string): { [k: string]: LcValue } {
  let i = 0;
  const ws = () => {
    for (;;) {
      while (i < text.length && /\s/.test(text[i])) i++;
      if (text.startsWith("//", i) || text[i] === "#") {
        while (i < text.length && text[i] !== "\n") i++;
      } else if (text.startsWith("/*", i)) {
        i = text.indexOf("*/", i) + 2;
      } else return;
    }
  };
  const expectCh = (c: string) => {
    ws();
    if (text[i] !== c) throw new Error(`libconfig: expected ${c} at ${i}, got ${JSON.stringify(text.slice(i, i + 20))}`);
    i++;
  };
  const str = (): string => {
    let out = "";
    for (;;) {
      expectCh('"');
      for (;;) {
        const c = text[i++];
        if (c === undefined) throw new Error("unterminated string");
        if (c === '"') break;
        if (c.charCodeAt(0) < 0x20) throw new Error(`raw control character 0x${c.charCodeAt(0).toString(16)} inside a string`);
        if (c === "\\") {
          const e = text[i++];
          if (e === "n") out += "\n";
          else if (e === "r") out += "\r";
          else if (e === "t") out += "\t";
          else if (e === "f") out += "\f";
          else if (e === "\\") out += "\\";
          else if (e === '"') out += '"';
          else if (e === "x") {
            out += String.fromCharCode(parseInt(text.slice(i, i + 2), 16));
            i += 2;
          } else throw new Error(`unknown escape \\${e}`);
        } else out += c;
      }
      ws();
      if (text[i] !== '"') return out; // adjacent literals concatenate
    }
  };
  const value = (): LcValue => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === "{") return group();
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const items: LcValue[] = [];
      ws();
      if (text[i] === close) {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        expectCh(close);
        return items;
      }
    }
    const m = /^(true|false|-?[0-9]+)/i.exec(text.slice(i));
    if (!m) throw new Error(`libconfig: bad value at ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
    i += m[0].length;
    if (/^true$/i.test(m[0])) return true;
    if (/^false$/i.test(m[0])) return false;
    return Number(m[0]);
  };
  const settings = (end: string | null): { [k: string]: LcValue } => {
    const g: { [k: string]: LcValue } = {};
    for (;;) {
      ws();
      if (end === null ? i >= text.length : text[i] === end) return g;
      const m = /^[A-Za-z*][-A-Za-z0-9_*]*/.exec(text.slice(i));
      if (!m) throw new Error(`libconfig: bad name at ${i}: ${JSON.stringify(text.slice(i, i + 20))}`);
      i += m[0].length;
      ws();
      if (text[i] !== "=" && text[i] !== ":") throw new Error(`libconfig: expected = or : after ${m[0]}`);
      i++;
      if (m[0] in g) throw new Error(`duplicate setting ${m[0]}`);
      g[m[0]] = value();
      ws();
      if (text[i] === ";" || text[i] === ",") i++;
    }
  };
  const group = (): { [k: string]: LcValue } => {
    expectCh("{");
    const g = settings("}");
    expectCh("}");
    return g;
  };
  const root = settings(null);
  return root;
}

const H1 = "a".repeat(64);
const H2 = "b".repeat(64);
const H3 = "c".repeat(64);

const base: SwDescriptionInput = {
  version: "2025.01.15-build.42",
  description: "ISAR rootfs for jetson",
  board: "jetson-orin-nano",
  hardwareCompatibility: ["1.0", "1.1"],
  entries: {
    images: [
      { filename: "rootfs.tar.xz", type: "archive", path: "/", sha256: H1 },
      { filename: "Image", type: "rawfile", path: "/boot/Image", sha256: H2, compressed: "zstd" },
    ],
    files: [{ filename: "board.dtb", type: "rawfile", path: "/boot/board.dtb", sha256: H3 }],
    scripts: [{ filename: "post-update.sh", type: "shellscript", sha256: H3 }],
  },
};

test("renders the seed's structure under the board, with sha256 on every entry", () => {
  const text = renderSwDescription(base);
  const doc = parseLibconfig(text) as any;
  expect(Object.keys(doc)).toEqual(["software"]);
  const sw = doc.software;
  expect(sw.version).toBe("2025.01.15-build.42");
  expect(sw.description).toBe("ISAR rootfs for jetson");
  const b = sw["jetson-orin-nano"];
  expect(b["hardware-compatibility"]).toEqual(["1.0", "1.1"]);
  expect(b.images).toEqual([
    { filename: "rootfs.tar.xz", type: "archive", path: "/", sha256: H1 },
    { filename: "Image", type: "rawfile", path: "/boot/Image", sha256: H2, compressed: "zstd" },
  ]);
  expect(b.files).toEqual([{ filename: "board.dtb", type: "rawfile", path: "/boot/board.dtb", sha256: H3 }]);
  expect(b.scripts).toEqual([{ filename: "post-update.sh", type: "shellscript", sha256: H3 }]);
  expect(renderSwDescription(base)).toBe(text); // deterministic
});

test("without a board the entries sit directly under software", () => {
  const doc = parseLibconfig(renderSwDescription({ ...base, board: undefined })) as any;
  expect(doc.software["hardware-compatibility"]).toEqual(["1.0", "1.1"]);
  expect(doc.software.images).toHaveLength(2);
  expect(doc.software["jetson-orin-nano"]).toBeUndefined();
});

test("selections: software.<board>.stable.{main,alt} with per-mode devices", () => {
  const text = renderSwDescription({
    ...base,
    entries: undefined,
    selections: {
      set: "stable",
      modes: {
        main: { images: [{ filename: "rootfs.ext4", type: "raw", device: "/dev/mmcblk0p1", sha256: H1 }] },
        alt: { images: [{ filename: "rootfs.ext4", type: "raw", device: "/dev/mmcblk0p2", sha256: H1 }] },
      },
    },
  });
  const b = (parseLibconfig(text) as any).software["jetson-orin-nano"];
  expect(Object.keys(b)).toEqual(["hardware-compatibility", "stable"]);
  expect(b.stable.main.images[0].device).toBe("/dev/mmcblk0p1");
  expect(b.stable.alt.images[0].device).toBe("/dev/mmcblk0p2");
});

test("encrypted entries carry encrypted = true and their ivt", () => {
  const ivt = "0123456789abcdef0123456789abcdef";
  const text = renderSwDescription({
    ...base,
    entries: { images: [{ filename: "rootfs.ext4", type: "raw", device: "/dev/sda2", sha256: H1, encrypted: true, ivt }] },
  });
  const img = (parseLibconfig(text) as any).software["jetson-orin-nano"].images[0];
  expect(img.encrypted).toBe(true);
  expect(img.ivt).toBe(ivt);
});

describe("string escaping", () => {
  const nasty = [
    'quote " inside',
    "back\\slash",
    "new\nline",
    "tab\tcr\rff\f",
    "ctl \x01\x02\x1b\x7f end",
    "trailing backslash \\",
    "unicode ä € 🚀",
    '\\"',
    "",
  ];
  test.each(nasty)("round-trips %j", (s) => {
    const lit = libconfigString(s);
    // eslint-disable-next-line no-control-regex -- the control characters are what this looks for
    expect(lit).not.toMatch(/[\x00-\x1f\x7f]/); // no raw control characters in the output
    const doc = parseLibconfig(`x = ${lit};`);
    expect(doc.x).toBe(s);
  });

  test("a nasty description survives the whole document", () => {
    const description = nasty.join(" | ");
    const doc = parseLibconfig(renderSwDescription({ ...base, description })) as any;
    expect(doc.software.description).toBe(description);
  });
});

describe("errors name the entry and the fix", () => {
  const img = (over: object) => ({ ...base, entries: { images: [{ filename: "rootfs.ext4", type: "raw", device: "/dev/sda", sha256: H1, ...over }] } });
  test.each([
    [img({ sha256: "abc" }), /images "rootfs.ext4": sha256 must be 64 lowercase hex/],
    [img({ sha256: H1.toUpperCase() }), /sha256 must be 64 lowercase hex/],
    [img({ device: undefined }), /type "raw" needs a device/],
    [img({ type: "rawfile", device: undefined }), /type "rawfile" needs a path/],
    [img({ type: "rawfile", device: undefined, path: "/boot/" + "k".repeat(250) }), /longer than 254 bytes/],
    [img({ encrypted: true }), /encrypted entries need ivt/],
    [img({ ivt: "0".repeat(32) }), /ivt is set but encrypted is not/],
    [img({ compressed: "xz" }), /compressed must be "zlib" or "zstd"/],
    [img({ filename: "dir/file" }), /plain bundle file name/],
    [img({ filename: "sw-description" }), /reserved/],
    [{ ...base, version: "1 0" }, /not a version label/],
    [{ ...base, hardwareCompatibility: [] }, /hardware-compatibility is empty/],
    [{ ...base, board: "bad board" }, /board "bad board"/],
    [{ ...base, entries: { images: [] } }, /nothing to install/],
    [{ ...base, selections: { set: "stable", modes: {} } }, /exactly one of entries/],
  ])("%#", (input, msg) => {
    expect(() => renderSwDescription(input as SwDescriptionInput)).toThrow(SwDescriptionError);
    expect(() => renderSwDescription(input as SwDescriptionInput)).toThrow(msg);
  });
});
