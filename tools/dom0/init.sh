#!/bin/busybox sh
# /init of the Linux dom0 in `cargo xtask xl-smoke`: bring up the Xen toolstack of Debian
# trixie (xen-utils-4.20), let `xl` create stubvirt as a driver domain
# (/guest/stubvirt.cfg), then twice a frontend with a virtio disk and a virtio NIC that
# stubvirt serves (/guest/frontend.cfg), then Linux frontends; print what xl wrote to
# xenstore, power off. With dom0_bench=1 on the command line, the side-by-side bench
# (`cargo xtask bench-e2e`, /bench.sh) runs instead of the frontends. Every line the host
# checks starts with "XL-DOM0 ". Each step that can hang is bounded.
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
# Waits (at most $2 s) until domain $1 is gone.
wait_gone() {
    n=0
    while xl domid $1 >/dev/null 2>&1; do
        n=$((n + 1))
        [ $n -ge $2 ] && say "$1 still there after $2 s" && return 1
        sleep 1
    done
    say "$1 gone after ${n} s"
}
# Guest $1's console (kept by xenconsoled), each line prefixed XL-$2.
console_of() {
    sed "s/^/XL-$2 /" /var/log/xen/console/guest-$1.log 2>/dev/null | tr -d '\r'
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
# It also keeps each guest's console in /var/log/xen/console/guest-NAME.log, which init
# prints once a Linux frontend is done.
mkdir -p /var/log/xen/console
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console &&
    say "xenconsoled started"

prefixed info timeout 60 xl info

# stubvirt, the driver domain: it watches its backend directories in xenstore.
prefixed create-backend timeout 60 xl create /guest/stubvirt.cfg
backend=$(xl domid stubvirt 2>/dev/null)
say "backend domid=$backend"
[ -n "$backend" ] || finish
sed "s/@BACKEND@/$backend/" /guest/frontend.cfg >/tmp/frontend.cfg
# The standalone disk backend is not Xen's: libxl only checks that the target exists.
dd if=/dev/zero of=/guest/disk.img bs=1M count=0 seek=16 2>/dev/null
# The side-by-side bench against Linux's PV backends instead (cargo xtask bench-e2e).
if [ -n "${dom0_bench:-}" ]; then
    . /bench.sh
    finish
fi

# Two frontends one after the other: the second is the first created again (a new
# domain id), which stubvirt must serve as well once it released the first.
for round in 1 2; do
    # Paused until its devices are served: xl create itself waits (10 s at most) for
    # stubvirt to answer the disk with InitWait, so rc=0 means stubvirt answered.
    prefixed create-$round timeout 120 xl -v create -p /tmp/frontend.cfg
    domid=$(xl domid fe 2>/dev/null)
    say "round $round frontend domid=$domid"
    [ -n "$domid" ] || break
    xenstore-ls -f /local/domain/$backend/backend 2>&1 | sed "s/^/XL-DOM0 xs-$round /"
    prefixed unpause-$round xl unpause $domid
    # The frontend powers off after its checks; xl's daemon then destroys it.
    n=0
    while xl domid fe >/dev/null 2>&1; do
        n=$((n + 1))
        [ $n -ge 120 ] && say "round $round frontend still there after 120 s" && break
        sleep 1
    done
    say "round $round frontend gone after ${n} s"
    sleep 2
    xenstore-ls -f /local/domain/$backend/backend 2>&1 | sed "s/^/XL-DOM0 xs-after-$round /"
done
# Linux frontends (the demo's kernel and checks): two at once, each with a RAM disk and a
# NIC on stubvirt's switch; each checks its disk, pings the other and one sends the other
# 4 MiB over TCP. Then one is created again and destroyed by xl while it uses its disk.
linux_frontend() {
    sed -e "s/@NAME@/$1/" -e "s|@ARGS@|$2|" /guest/linux-frontend.cfg >/tmp/$1.cfg
    prefixed create-$1 timeout 120 xl create -p /tmp/$1.cfg
    say "$1 domid=$(xl domid $1 2>/dev/null)"
}
linux_frontend fe1 "fe_ip=10.0.3.1 fe_gw=10.0.3.2 fe_peer=10.0.3.2:5001"
linux_frontend fe2 "fe_ip=10.0.3.2 fe_gw=10.0.3.1 fe_peer_listen=5001"
prefixed unpause-fe1 xl unpause fe1
prefixed unpause-fe2 xl unpause fe2
wait_gone fe1 400
wait_gone fe2 200
console_of fe1 FE1
console_of fe2 FE2
rm -f /var/log/xen/console/guest-fe1.log
linux_frontend fe1 "fe_ip=10.0.3.1 fe_gw=10.0.3.2"
prefixed unpause-again xl unpause fe1
n=0
until grep -q "FRONTEND-RESULT stage=blk " /var/log/xen/console/guest-fe1.log 2>/dev/null; do
    n=$((n + 1))
    [ $n -ge 240 ] && say "fe1 again: no disk stage after 120 s" && break
    usleep 500000
done
prefixed destroy xl destroy fe1
wait_gone fe1 60
sleep 3
console_of fe1 FE1-AGAIN
xenstore-ls -f /local/domain/$backend/backend 2>&1 | sed "s/^/XL-DOM0 xs-end /"
prefixed list xl list
finish
