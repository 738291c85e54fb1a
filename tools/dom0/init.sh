#!/bin/busybox sh
# /init of the Linux dom0 in `cargo xtask xl-smoke`: bring up the Xen toolstack of Debian
# trixie (xen-utils-4.20), let `xl` create the guest of /guest/guest.cfg (a virtio device
# and a virtio disk, both for a backend in dom0), print what xl wrote to xenstore, power
# off. Every line the host checks starts with "XL-DOM0 ". The order is the one known to
# work (../shared/reference/xl-dom0-init-xen420.sh); each step that can hang is bounded.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/lib/xen-4.20/bin

say() { echo "XL-DOM0 $*"; }
# Prefixes every line of a command's output, and reports its status afterwards.
prefixed() {
    label=$1
    shift
    "$@" >/tmp/out 2>&1
    rc=$?
    sed "s/^/XL-DOM0 $label /" /tmp/out
    say "$label rc=$rc"
    return $rc
}
finish() {
    say "done"
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /run /dev/pts /var/lib
mount -t tmpfs tmpfs /run
mount -t devpts devpts /dev/pts
# The toolstack's state: xenstored's and xl's run files, xl's per-domain user data and
# its logs (the daemon that watches the guest writes one).
ln -s /run /var/run
mkdir -p /run/xen /run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen
say "dom0 up: $(uname -r)"

for m in xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs; do
    insmod /lib/modules/$m.ko || say "insmod $m failed"
done
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen && say "xenfs mounted"

# xenstored puts itself in the background; it is ready once the tree answers.
xenstored --pid-file /run/xenstored.pid
n=0
until xenstore-ls / >/dev/null 2>&1; do
    n=$((n + 1))
    [ $n -ge 30 ] && say "xenstored not answering after 30 s" && finish
    sleep 1
done
say "xenstored answering"
prefixed init-dom0 timeout 60 xen-init-dom0
# Without xenconsoled, `xl create` waits for the guest's console until it times out.
xenconsoled --pid-file=/run/xenconsoled.pid && say "xenconsoled started"

prefixed info timeout 60 xl info

# xl counts a disk as added once its backend says InitWait (state 2), and gives up after
# 10 s; stubvirt will say so once it watches xenstore. Until then this stands in for that
# one step: it prints the disk's keys as xl wrote them (one transaction), then answers.
stand_in_disk_backend() {
    base=/local/domain/0/backend/virtio_disk
    n=0
    while [ $n -lt 600 ]; do
        for dom in $(xenstore-list $base 2>/dev/null); do
            for dev in $(xenstore-list $base/$dom 2>/dev/null); do
                [ "$(xenstore-read $base/$dom/$dev/state 2>/dev/null)" = 1 ] || continue
                xenstore-ls -f $base/$dom/$dev | sed 's/^/XL-DOM0 disk-as-written /'
                xenstore-write $base/$dom/$dev/state 2
                say "stand-in: $base/$dom/$dev state=2"
                return
            done
        done
        n=$((n + 1))
        usleep 100000
    done
    say "stand-in: no disk backend appeared in 60 s"
}
stand_in_disk_backend &
# The standalone disk backend is not Xen's: libxl only checks that the target exists.
dd if=/dev/zero of=/guest/disk.img bs=1M count=0 seek=16 2>/dev/null
# Paused: the guest cannot end (and xl remove its keys) before they are read.
prefixed create timeout 120 xl -v create -p /guest/guest.cfg
domid=$(xl domid fe 2>/dev/null)
say "guest domid=$domid"
prefixed list xl list
xenstore-ls -f /local/domain/0/backend 2>&1 | sed 's/^/XL-DOM0 xs /'
[ -n "$domid" ] && xenstore-ls -f /local/domain/$domid/device 2>&1 | sed 's/^/XL-DOM0 xs /'
if [ -n "$domid" ]; then
    prefixed unpause xl unpause $domid
    sleep 5
    prefixed list-after xl list
fi
finish
