#!/.vm/busybox sh
# /init of pycontain's cgroup v2 test guest (tests/vm/guest.py builds the initramfs around it).
#
# The initramfs stays the root (RAM, writable). This script loads the virtio-mmio and 9p modules, mounts the
# host directories listed in /.vm/shares read-only at their own paths, mounts cgroup2 at /sys/fs/cgroup and
# enables every controller in the root's cgroup.subtree_control, then runs /.vm/run.sh from the repository,
# prints "PYCONTAIN-VM-RESULT rc=N" and powers off. Everything stays in the root cgroup: the root is the
# one cgroup exempt from v2's no-internal-processes rule, so the cgroups the tests create beneath their own
# (the root) get every controller. Any setup failure prints PYCONTAIN-VM-ERROR and rc=125.

B=/.vm/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.vm
export HOME=/root TERM=dumb LANG=C.UTF-8 USER=root LOGNAME=root
READY=PYCONTAIN-VM-READY
RESULT=PYCONTAIN-VM-RESULT

off() {
    $B sync
    $B poweroff -f
    $B reboot -f  # -no-reboot: QEMU exits on a reboot too
    while :; do $B sleep 1; done
}

fail() {
    echo "PYCONTAIN-VM-ERROR $*"
    echo "$RESULT rc=125"
    off
}

$B mount -t proc proc /proc || fail "mount proc"
$B mount -t sysfs sysfs /sys || fail "mount sysfs"
$B mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
$B mount -t tmpfs -o mode=1777 tmpfs /tmp
$B mount -t tmpfs -o mode=755 tmpfs /run
$B hostname pycontain-vm
$B ip link set lo up 2>/dev/null

for m in /.vm/modules/*.ko; do
    $B insmod "$m" || fail "insmod $m"
done

while read -r tag path; do
    [ -n "$tag" ] || continue
    $B mkdir -p "$path"  # a share under /tmp or /run: the tmpfs mounted there hides the initramfs' directory
    $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 "$tag" "$path" \
        || fail "mount 9p $tag at $path"
done < /.vm/shares

cwd=/
for word in $($B cat /proc/cmdline); do
    case "$word" in
        pycontain.epoch=*) $B date -s "@${word#*=}" >/dev/null 2>&1 ;;
        pycontain.cwd=*) cwd="${word#*=}" ;;
    esac
done

$B mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
for c in $($B cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || fail "enable cgroup controller $c"
done
echo "$READY controllers=$($B cat /sys/fs/cgroup/cgroup.subtree_control)"

cd "$cwd" || fail "cd $cwd"
$B sh /.vm/run.sh
echo "$RESULT rc=$?"
off
