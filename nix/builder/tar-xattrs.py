# Reads an uncompressed tar stream on stdin and writes a debugfs script that sets every extended
# attribute the archive records (pax SCHILY.xattr.* as GNU tar writes them, LIBARCHIVE.xattr.* as
# bsdtar does) on the same path inside an ext4 image.
#
# Why: Nix builds cannot set xattrs (its seccomp filter answers setxattr with ENOTSUP) and mke2fs 1.47.0
# cannot read xattrs faked by fakeroot, so `mke2fs -d` never sees them. debugfs writes them straight into
# the image instead. Values are written to files under argv[1] and set with `ea_set -f`.
#
# Contract: output is in archive order (deterministic); a member whose path debugfs cannot take safely
# (whitespace, quotes, control characters) makes the script exit 2 naming it; exit 0 otherwise.
import base64
import os
import re
import sys
import tarfile

out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
safe = re.compile(r"^[A-Za-z0-9._@+,=:/~%#-]+$")
n = 0
with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
    for m in tar:
        attrs = []
        for key, value in m.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                raw = value.encode("utf-8", "surrogateescape")
                attrs.append((key[len("SCHILY.xattr."):], raw))
            elif key.startswith("LIBARCHIVE.xattr."):
                attrs.append((key[len("LIBARCHIVE.xattr."):], base64.b64decode(value + "=" * (-len(value) % 4))))
        if not attrs:
            continue
        rel = m.name[2:] if m.name.startswith("./") else m.name
        path = "/" + rel.strip("/")
        if not safe.match(path):
            sys.stderr.write("tar-xattrs: cannot set xattrs on %r: unusual characters in the path\n" % path)
            sys.exit(2)
        for name, raw in sorted(attrs):
            if not safe.match(name):
                sys.stderr.write("tar-xattrs: unusual xattr name %r on %s\n" % (name, path))
                sys.exit(2)
            n += 1
            f = os.path.join(out_dir, "x%d" % n)
            with open(f, "wb") as fh:
                fh.write(raw)
            sys.stdout.write("ea_set -f %s %s %s\n" % (f, path, name))
sys.stderr.write("tar-xattrs: %d extended attributes\n" % n)
