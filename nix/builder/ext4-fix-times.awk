# Reads `dumpe2fs` output of a freshly made ext4 and prints a debugfs script that sets atime and ctime
# of every used inode (the root directory and every inode from "First inode" on) to `epoch`.
# Used inodes are the complement of each group's "Free inodes:" ranges. Input is dumpe2fs text only.
/^Inodes per group:/ { ipg = $4 + 0 }
/^First inode:/ { first = $3 + 0 }
/^Group [0-9]+:/ { g = $2; sub(/:/, "", g); g = g + 0 }
/^  Free inodes:/ {
  lo = g * ipg + 1
  hi = (g + 1) * ipg
  split("", freed)
  line = $0
  sub(/^  Free inodes: */, "", line)
  n = split(line, parts, /, */)
  for (i = 1; i <= n; i++) {
    if (parts[i] == "") continue
    m = split(parts[i], ab, "-")
    a = ab[1] + 0
    b = (m > 1) ? ab[2] + 0 : a
    for (x = a; x <= b; x++) freed[x] = 1
  }
  for (x = lo; x <= hi; x++) {
    if ((x in freed) || (x != 2 && x < first)) continue
    printf "sif <%d> atime @%s\nsif <%d> ctime @%s\n", x, epoch, x, epoch
  }
}
