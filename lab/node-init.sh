#!/bin/bash
# node-init.sh: process 1 of one simulated lab host. Started by the lab harness as
#   unshare --mount --uts --pid --fork --mount-proc --propagation private --kill-child -- bash node-init.sh HOSTDIR [PROJECT]
# so it runs in its own mount, UTS and PID namespaces (network and users are shared with this machine:
# the host is told apart by its own loopback address).
#
# It builds the host's root filesystem view, then runs the host's own sshd in the foreground:
#   /etc /var /opt /srv      overlay: this machine's directory below, HOSTDIR/upper/<d> above (copy-on-write)
#   /root /home /mnt /boot   HOSTDIR/fs/<d>, private to the host (empty at first)
#   /tmp /run                HOSTDIR/fs/<d>, emptied at every boot
#   /dev                     HOSTDIR/dev: null zero full random urandom tty bound from this machine, own
#                            devpts and shm; any other file there is the host's own "block device" (eMMC
#                            partitions written by swupdate are plain files in HOSTDIR/dev)
#   /usr/local/bin, /usr/local/sbin   HOSTDIR/bin, HOSTDIR/sbin: the per-host tool dir on PATH (tpi,
#                            reboot/poweroff, and later k3s/kubectl stand-ins)
#   /opt/lab-k8s             $LAB_K8S_DIR read-only, when set (a k3s lab's Kubernetes components)
#   /srv/k3s-cluster         $LAB_K3S_LOG_DIR, when set (a k3s lab's shared observation logs)
#   everything else          this machine's files, READ-ONLY (/usr, /work, /nix, ...)
# Boot hooks: executables in /etc/lab/boot.d run in the background once sshd is started.
# Exit codes (read by the harness): 100 reboot requested (SIGHUP to pid 1, what `reboot` sends),
# 101 poweroff requested (SIGUSR1), 0 stopped (SIGTERM), 102 sshd exited on its own, 103 setup failed.
set -u
fail() { echo "node-init: $*" >&2; exit 103; }
[ -d "$1" ] || fail "host dir $1 missing"
# The host dir and the project may live under a directory this host replaces with its own (/root,
# /home, /tmp, ...: a clone in root's home, a CI clone under /tmp). Hold both open and reach them
# through the descriptors (every command started here inherits fds 8 and 9), never by path.
exec 9<"$1" || fail "cannot open host dir $1"
H=/proc/self/fd/9
# mount(8) would resolve /proc/self/fd/N to a path string and look that up again, possibly through a
# directory already replaced: every mount here passes its paths to the kernel as they are.
mnt() { command mount --no-canonicalize "$@"; }

mnt --make-rprivate / || fail "cannot make mounts private"

# copy-on-write system directories
for d in etc var opt srv; do
  [ -d "/$d" ] || continue
  mkdir -p "$H/upper/$d" "$H/work/$d"
  mnt -t overlay "lab-$d" -o "lowerdir=/$d,upperdir=$H/upper/$d,workdir=$H/work/$d" "/$d" || fail "overlay on /$d failed"
done

# device directory: bind this machine's harmless character devices onto placeholder files
mkdir -p "$H/dev/pts" "$H/dev/shm"
for n in null zero full random urandom tty; do
  [ -e "$H/dev/$n" ] || : > "$H/dev/$n"
  mnt --bind "/dev/$n" "$H/dev/$n" || fail "cannot bind /dev/$n"
done
mnt -t devpts -o newinstance,ptmxmode=0666,mode=0620 lab-devpts "$H/dev/pts" || fail "devpts failed"
ln -sfn pts/ptmx "$H/dev/ptmx"
mnt -t tmpfs -o mode=1777,size=64m lab-shm "$H/dev/shm" || fail "shm tmpfs failed"
ln -sfn /proc/self/fd "$H/dev/fd"
ln -sfn /proc/self/fd/0 "$H/dev/stdin"; ln -sfn /proc/self/fd/1 "$H/dev/stdout"; ln -sfn /proc/self/fd/2 "$H/dev/stderr"

# The project (the k3s stand-in, Node 22 in node_modules, ...) must stay visible, read-only, at its own
# path, also when that path is under one of the host's private directories: bind it into the private
# directory first, which is then bound recursively.
P="${2:-}"
proj_in=""
for d in root home mnt boot tmp run; do
  case "$P" in
    "/$d"/?*)
      exec 8<"$P" || fail "cannot open the project $P"
      rel="${P#/"$d"/}"
      mkdir -p "$H/fs/$d/$rel"
      { mnt --bind /proc/self/fd/8 "$H/fs/$d/$rel" && mnt -o remount,bind,ro "$H/fs/$d/$rel"; } || fail "cannot bind the project $P"
      proj_in=$d
      ;;
  esac
done

# the Kubernetes components of a k3s lab (scripts/k8s-components.sh's cache, which lives under /root),
# read-only at /opt/lab-k8s; bound before /root becomes the host's own
if [ -n "${LAB_K8S_DIR:-}" ]; then
  mkdir -p /opt/lab-k8s
  { mount --bind "$LAB_K8S_DIR" /opt/lab-k8s && mount -o remount,bind,ro /opt/lab-k8s; } || fail "cannot bind the Kubernetes components $LAB_K8S_DIR"
fi
# a k3s lab's shared observation logs (join.log, argv.log), read-write at /srv/k3s-cluster
if [ -n "${LAB_K3S_LOG_DIR:-}" ]; then
  mkdir -p /srv/k3s-cluster
  mount --bind "$LAB_K3S_LOG_DIR" /srv/k3s-cluster || fail "cannot bind the k3s log directory $LAB_K3S_LOG_DIR"
fi

# private directories (tmp and run are emptied at each boot by the harness)
for d in root home mnt boot run; do
  mkdir -p "$H/fs/$d"
  mnt --rbind "$H/fs/$d" "/$d" || fail "bind /$d failed"
done
chmod 0700 /root
mnt --bind /usr /usr && mnt -o remount,bind,ro /usr || fail "cannot make /usr read-only"
mkdir -p "$H/bin" "$H/sbin"
mnt --bind "$H/bin" /usr/local/bin || fail "bind /usr/local/bin failed"
mnt --bind "$H/sbin" /usr/local/sbin || fail "bind /usr/local/sbin failed"
# Data disks (seed 003): the image's own systemd mount units (those in the host's upper /etc, never
# this machine's), run as systemd would at boot. A disk is the file HOSTDIR/disks/<name> standing for
# What=/dev/<name>, loop-mounted (while this machine's /dev still has loop-control). A unit whose device
# is absent or does not mount is skipped: nofail, the node boots without it.
# The disk files are opened through a bind mount of their own: an open-for-write file counts against
# its mount, and / is made read-only below.
[ -d "$H/disks" ] && mnt --bind "$H/disks" "$H/disks"
for u in "$H"/upper/etc/systemd/system/*.mount; do
  [ -f "$u" ] || continue
  what=$(sed -n 's/^What=//p' "$u" | tail -n 1)
  where=$(sed -n 's/^Where=//p' "$u" | tail -n 1)
  type=$(sed -n 's/^Type=//p' "$u" | tail -n 1)
  disk="$H/disks/${what#/dev/}"
  if [ -n "$where" ] && [ "${what#/dev/}" != "$what" ] && [ -f "$disk" ]; then
    if mkdir -p "$where" && mnt -t "${type:-auto}" -o loop "$disk" "$where"; then
      echo "node-init: data disk $what mounted on $where" >&2
    else
      echo "node-init: data disk $what did not mount on $where (nofail: booting without it)" >&2
    fi
  else
    echo "node-init: data disk $what for $where is missing (nofail: booting without it)" >&2
  fi
done
mnt --rbind "$H/dev" /dev || fail "bind /dev failed"
mkdir -p "$H/fs/tmp"; chmod 1777 "$H/fs/tmp"
mnt --rbind "$H/fs/tmp" /tmp || fail "bind /tmp failed"
[ -z "$proj_in" ] || exec 8<&-

# everything not listed above is this machine's, read-only here
mnt -o remount,bind,ro / || fail "cannot make / read-only"
exec 9<&-   # every mount is made: nothing started below needs the host dir

[ -s /etc/hostname ] && hostname "$(head -n1 /etc/hostname)"
mkdir -p /run/sshd && chmod 0755 /run/sshd

SSHD=""
trap '[ -n "$SSHD" ] && kill -TERM "$SSHD" 2>/dev/null; exit 100' HUP
trap '[ -n "$SSHD" ] && kill -TERM "$SSHD" 2>/dev/null; exit 101' USR1
trap '[ -n "$SSHD" ] && kill -TERM "$SSHD" 2>/dev/null; exit 0' TERM INT
/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config.lab &
SSHD=$!
echo "node-init: $(hostname) up, sshd pid $SSHD" >&2
# boot hooks (the lab's stand-in for init services, e.g. a k3s stand-in): every executable in
# /etc/lab/boot.d, in name order, in the background, output to /var/log/lab-boot.log
if [ -d /etc/lab/boot.d ]; then
  for f in /etc/lab/boot.d/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    ( cd / && "$f" ) </dev/null >>/var/log/lab-boot.log 2>&1 &
  done
fi
while :; do
  wait "$SSHD"
  kill -0 "$SSHD" 2>/dev/null || { echo "node-init: sshd exited" >&2; exit 102; }
done
