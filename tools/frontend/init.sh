#!/bin/busybox sh
# The frontend domU's init (busybox initramfs) for `cargo xtask demo`.
#
# 1. Readiness handshake, bounded: read the virtio-mmio magic of each device window from
#    userspace (busybox devmem in a subshell). Before stubvirt registered its ioreq range,
#    Xen answers the access with a data abort: only that subshell dies (SIGBUS). Then the
#    virtio modules are loaded with platform autoprobe off and only the windows that
#    answered are bound to virtio-mmio (probing a silent one would oops the kernel).
# 2. Block, the devices told apart by their virtio-blk serial: the RAM disk
#    (stubvirt-ramdisk) and the disk stubvirt backs with QEMU's virtio-blk (stubvirt-disk).
#    Each: patterned whole-device write read back, ext2 checked by e2fsck, fe_io figures;
#    the disk's final sha256 goes to the host, which compares it with the raw image.
# 3. Network on eth0: MAC, MTU, carrier, ping of the gateway, TCP transfer from the host
#    and the same bytes back to it.
# One `FRONTEND-RESULT stage=... key=value ...` line per result, short: Xen cuts guest
# console lines at about 128 characters, so a stage may print several lines (the summary
# merges them). `FRONTEND-RESULT done=1` at the end.
# Kernel command line parameters (passed as environment by Linux): fe_wait (seconds to
# wait for the backend, default 60), fe_ip, fe_gw, fe_tcp_port (the host's TCP source),
# fe_tcp_sink (the host's TCP sink), fe_peer (IP:PORT of another frontend to ping and
# send the host's bytes to), fe_peer_listen (PORT to take one such stream on), fe_flood
# (seconds of ringing a doorbell as fast as possible before the checks), fe_rebind
# (rounds of unbinding and binding the virtio drivers during I/O, after the checks),
# fe_crash_on (PORT: once done, wait for a word on it, then crash the kernel), fe_survive
# (IP:PORT: run I/O, tell that frontend to crash, check I/O during and after),
# fe_blk_limit, fe_disk_limit, fe_net_limit (stage bounds, s), fe_io_s (s per figure),
# fe_bench (run /bench.sh after the probe instead of the checks; its parameters there).
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
# --install finds busybox through /proc/self/exe.
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
# e2fsck reads /etc/mtab to refuse mounted devices.
ln -sf /proc/mounts /etc/mtab

WAIT=${fe_wait:-60}
IP=${fe_ip:-10.0.2.15}
GW=${fe_gw:-10.0.2.2}
TCP_PORT=${fe_tcp_port:-}
TCP_SINK=${fe_tcp_sink:-}
PEER=${fe_peer:-}
LISTEN=${fe_peer_listen:-}
# name:base of each device window (tools/src/demo/layout.rs demo_devices); disk is the optional one.
WINDOWS="blk:0x2000000 net:0x2000200 disk:0x2000400"
# Seconds the other windows get once one answered (stubvirt registers them in turn).
GRACE=5
MAGIC=0x74726976
MIB=1048576
# Debian's e2fsprogs, by path: this busybox's shell runs its own applets (it has a smaller
# mke2fs) before anything on PATH.
MKE2FS=/sbin/mke2fs
E2FSCK=/sbin/e2fsck

result() { echo "FRONTEND-RESULT $*"; }
note() { echo "FRONTEND: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
# seconds between two uptime readings
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# whether $1 seconds reach $2
reached() { awk -v w="$1" -v m="$2" 'BEGIN { exit !(w >= m) }'; }
sha() { sha256sum | cut -d' ' -f1; }
short() { echo "$1" | cut -c1-16; }
# the first lines of file $1 as notes
notes_of() { head -n "${2:-4}" "$1" | cut -c1-100 | while read -r l; do note "$l"; done; }
finish() {
    # stubvirt prints its counters at most every 2 s: let it print the final ones first.
    sleep 3
    result "done=1 uptime=$(now)"
    # A stuck device would block sync too.
    [ -z "$stuck" ] && sync
    [ -n "${fe_crash_on:-}" ] && crash_when_told
    poweroff -f
}
# The frontend that crashes (fe_crash_on=PORT; its kernel has panic=-1, so the panic ends
# in a reboot request Xen sees): waits, bounded, for the other frontend's word, then
# `echo c` to sysrq, with that frontend's I/O in flight on stubvirt.
crash_when_told() {
    timeout 300 nc -l -p "$fe_crash_on" </dev/null >/dev/null 2>&1
    result "stage=crash uptime=$(now)"
    echo c >/proc/sysrq-trigger
}
# devmem in a subshell: a data abort kills only the subshell.
magic_at() { (devmem "$1" 32) 2>/dev/null | tr 'A-F' 'a-f'; }
state_of() { eval echo \$"$1"; }

note "userspace up at $(now) s; waiting up to $WAIT s for the backend"
result "stage=boot uptime=$(now) cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

# --- 1. readiness handshake -----------------------------------------------------------
t0=$(now)
tries=0
blk=absent
net=absent
disk=absent
first=""
answered() { [ "$blk$net$disk" != absentabsentabsent ]; }
while :; do
    tries=$((tries + 1))
    for w in $WINDOWS; do
        name=${w%%:*}
        [ "$(state_of $name)" = absent ] && [ "$(magic_at ${w#*:})" = "$MAGIC" ] && eval $name=ready
    done
    if [ -z "$first" ] && answered; then
        first=$(now)
        waited=$(since "$t0")
    fi
    [ "$blk$net$disk" = readyreadyready ] && break
    [ -n "$first" ] && reached "$(since "$first")" $GRACE && break
    reached "$(since "$t0")" "$WAIT" && break
    sleep 0.5
done
if ! answered; then
    result "stage=handshake backend=absent polled_s=$(since "$t0") tries=$tries"
    note "the backend never answered at $WINDOWS within $WAIT s (no virtio magic)"
    finish
fi
result "stage=handshake backend=ready blk=$blk net=$net disk=$disk waited_s=$waited tries=$tries"

# Platform autoprobe off: loading virtio_mmio then binds nothing by itself.
echo 0 > /sys/bus/platform/drivers_autoprobe
# In dependency order; a module whose dependencies are not loaded yet is retried in the
# next round.
pending="virtio_ring virtio dimlib failover net_failover virtio_blk virtio_net virtio_mmio"
for round in 1 2 3; do
    left=""
    for m in $pending; do
        insmod /lib/modules/$m.ko 2>/dev/null || left="$left $m"
    done
    pending=$left
    [ -z "$pending" ] && break
done
[ -n "$pending" ] && note "modules not loaded:$pending"
block_wanted=0
for w in $WINDOWS; do
    name=${w%%:*}
    [ "$(state_of $name)" = ready ] || continue
    [ $name = net ] || block_wanted=$((block_wanted + 1))
    base=${w#*:}
    echo ${base#0x}.virtio > /sys/bus/platform/drivers/virtio-mmio/bind ||
        note "cannot bind ${base#0x}.virtio to virtio-mmio"
done

# The /dev node of the virtio-blk device whose serial is $1 (empty: none).
by_serial() {
    for b in /sys/block/vd*; do
        [ "$(cat $b/serial 2>/dev/null)" = "$1" ] && echo /dev/${b##*/} && return
    done
}
# Waits for the drivers, then names the devices in /tmp/devices. Run bounded: reading a
# serial is a request to the backend.
probe_stage() {
    for i in $(seq 1 40); do
        n=$(ls /sys/block | grep -c '^vd')
        [ $n -ge $block_wanted ] && { [ "$net" = absent ] || [ -e /sys/class/net/eth0 ]; } && break
        sleep 0.25
    done
    ram=$(by_serial stubvirt-ramdisk)
    disk_dev=$(by_serial stubvirt-disk)
    echo "RAM=$ram DISK=$disk_dev" > /tmp/devices
    serials=$(for b in /sys/block/vd*; do [ -e $b ] && printf '%s:%s,' ${b##*/} "$(cat $b/serial 2>/dev/null)"; done)
    eth0=$([ -e /sys/class/net/eth0 ] && echo yes || echo no)
    result "stage=probe ramdisk=${ram:-none} disk=${disk_dev:-none} eth0=$eth0 uptime=$(now)"
    result "stage=probe serials=${serials%,}"
}

# Runs function $2 in the background for at most $3 seconds. A frontend vcpu whose MMIO
# access is never answered stays blocked in Xen, and so does the process on it; the other
# vcpu then reports the stuck stage (with the virtio interrupt counts) and the run goes on.
bounded() {
    name=$1 func=$2 limit=$3
    $func &
    pid=$!
    t=$(now)
    while kill -0 $pid 2>/dev/null; do
        if reached "$(since "$t")" "$limit"; then
            state=$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)
            result "stage=$name ok=0 reason=stuck-after-${limit}s pid_state=$state"
            grep -i virtio /proc/interrupts | awk '{ printf "FRONTEND: irq %s", $0; print "" }'
            kill -9 $pid 2>/dev/null
            stuck=1
            return 1
        fi
        sleep 0.5
    done
    wait $pid
}

bounded probe probe_stage 30
. /tmp/devices 2>/dev/null
# The side-by-side bench against Linux's PV backends instead of the checks
# (cargo xtask bench-e2e; tools/frontend/bench.sh).
if [ -n "${fe_bench:-}" ]; then
    . /bench.sh
    finish
fi

# A busy or hostile frontend (fe_flood=SECONDS): ring the disk's QueueNotify as fast as
# possible first, while the other frontends take their figures; then the usual checks.
if [ -n "${fe_flood:-}" ]; then
    result "stage=flood $(fe_flood 0x2000050 "$fe_flood" 2>&1 | tr '\n' ' ')"
fi
dmesg | grep -i -E 'virtio|vd[a-z]|xen.grant' | tail -8

# --- 2. block -------------------------------------------------------------------------
# 2 MiB of random data; region k of a device gets the 1 MiB at offset (k * 4 KiB) % 1 MiB
# of it, so no two neighbouring regions hold the same bytes.
dd if=/dev/urandom of=/tmp/pat bs=$MIB count=2 2>/dev/null
SIZES="512 4096 65536 $MIB 16384 262144 1024 131072"
for tool in $MKE2FS $E2FSCK; do
    $tool -V >/tmp/version 2>&1 || note "$tool does not run:"
    notes_of /tmp/version 1
done

# Size of device $1 as stage $2; false when it is read-only.
device_info() {
    size=$(blockdev --getsize64 $1)
    ro=$(blockdev --getro $1)
    result "stage=$2 dev=$1 size_bytes=$size ro=$ro ssz=$(blockdev --getss $1)"
    [ "$ro" = 0 ] || { result "stage=$2_verify ok=0 reason=read-only"; return 1; }
}

# sync, write back and drop the page cache of $1, then fsync it (a device flush).
flush() {
    sync
    blockdev --flushbufs $1
    dd if=/dev/null of=$1 count=0 conv=notrunc,fsync 2>/dev/null
}

# The expected contents of a device of $1 bytes after pattern_test.
pattern() {
    k=0
    while [ $k -lt $(($1 / MIB)) ]; do
        dd if=/tmp/pat iflag=skip_bytes skip=$(((k * 4096) % MIB)) bs=$MIB count=1 2>/dev/null
        k=$((k + 1))
    done
    [ $(($1 % MIB)) -gt 0 ] && dd if=/tmp/pat bs=512 count=$((($1 % MIB) / 512)) 2>/dev/null
}

# Writes the pattern over all of device $1 in 1 MiB regions with mixed request sizes,
# alternately O_DIRECT and buffered+fsync; flushes; reads it back O_DIRECT and buffered.
# Reports as stage $2_verify; leaves the sha256 read back in DEVICE_SHA.
pattern_test() {
    dev=$1 stage=${2}_verify
    size=$(blockdev --getsize64 $dev)
    regions=$((size / MIB))
    tail_bytes=$((size % MIB))
    set -- $SIZES
    nsizes=$#
    t=$(now)
    k=0
    direct=0
    buffered=0
    while [ $k -lt $regions ]; do
        i=$((k % nsizes + 1))
        eval bs=\${$i}
        if [ $((k % 2)) = 0 ]; then
            flag=oflag=direct
            direct=$((direct + 1))
        else
            flag=conv=fsync
            buffered=$((buffered + 1))
        fi
        dd if=/tmp/pat of=$dev iflag=skip_bytes,fullblock skip=$(((k * 4096) % MIB)) bs=$bs \
            count=$((MIB / bs)) seek=$((k * MIB / bs)) $flag conv=notrunc 2>/dev/null ||
            { result "stage=$stage ok=0 reason=write-failed region=$k bs=$bs"; return; }
        k=$((k + 1))
    done
    if [ $tail_bytes -gt 0 ]; then
        dd if=/tmp/pat of=$dev bs=512 count=$((tail_bytes / 512)) seek=$((regions * MIB / 512)) \
            oflag=direct conv=notrunc 2>/dev/null
    fi
    flush $dev
    wrote_s=$(since "$t")
    expected=$(pattern $size | sha)
    got_direct=$(dd if=$dev bs=$MIB iflag=direct 2>/dev/null | sha)
    echo 3 > /proc/sys/vm/drop_caches
    got_buffered=$(dd if=$dev bs=65536 2>/dev/null | sha)
    ok=0
    [ "$expected" = "$got_direct" ] && [ "$expected" = "$got_buffered" ] && ok=1
    result "stage=$stage ok=$ok bytes=$size regions=$regions direct_regions=$direct buffered_regions=$buffered"
    result "stage=$stage sizes=$(echo $SIZES | tr ' ' ',') write_s=$wrote_s"
    result "stage=$stage sha256=$(short $expected) direct_read=$(short $got_direct) buffered_read=$(short $got_buffered)"
    DEVICE_SHA=$got_direct
}

# fe_io's figures for device $1 as stage $2 (it overwrites the device).
perf_test() {
    fe_io $1 "${fe_io_s:-2}" >/tmp/fe_io.out 2>/tmp/fe_io.err
    rc=$?
    while read -r line; do result "stage=$2 $line"; done </tmp/fe_io.out
    if [ $rc != 0 ]; then
        result "stage=$2 ok=0 reason=fe_io-exit-$rc"
        notes_of /tmp/fe_io.err
    fi
}

# ext2 on device $1 as stage $2: mkfs, mount, create/copy/delete, unmount, mount again and
# compare, unmount, then e2fsck -fn (read-only, forced) must find it clean.
fs_test() {
    dev=$1 stage=$2
    if ! $MKE2FS -q -F -t ext2 $dev </dev/null >/tmp/mkfs.log 2>&1 || ! mount -t ext2 $dev /mnt; then
        result "stage=$stage mkfs=ext2 ok=0 reason=mke2fs-or-mount-failed"
        notes_of /tmp/mkfs.log
        return
    fi
    dd if=/tmp/pat of=/mnt/a bs=65536 count=16 2>/dev/null
    cp /mnt/a /mnt/b
    mkdir /mnt/d
    for j in $(seq 1 50); do echo "file $j" > /mnt/d/f$j; done
    rm /mnt/a /mnt/d/f1 /mnt/d/f2
    sync
    want=$(dd if=/tmp/pat bs=65536 count=16 2>/dev/null | sha)
    umount /mnt
    echo 3 > /proc/sys/vm/drop_caches
    fs_ok=0
    n=0
    if mount -t ext2 $dev /mnt; then
        got=$(sha </mnt/b)
        n=$(ls /mnt/d | wc -l)
        [ "$got" = "$want" ] && [ "$n" = 48 ] && [ ! -e /mnt/a ] && fs_ok=1
        umount /mnt
    fi
    fsck=clean
    $E2FSCK -fn $dev </dev/null >/tmp/fsck.log 2>&1 || fsck=rc$?
    result "stage=$stage mkfs=ext2 ok=$fs_ok files=$n fsck=$fsck"
    [ $fsck = clean ] || notes_of /tmp/fsck.log 6
}

ram_stage() {
    [ -n "$RAM" ] || { note "no block device with serial stubvirt-ramdisk"; return; }
    device_info $RAM blk || return
    pattern_test $RAM blk
    perf_test $RAM blk_perf
    fs_test $RAM fs
}
# The disk's contents at the end are the pattern, whose sha256 the host checks.
disk_stage() {
    [ -n "$DISK" ] || { note "no block device with serial stubvirt-disk"; return; }
    device_info $DISK disk || return
    perf_test $DISK disk_perf
    fs_test $DISK disk_fs
    pattern_test $DISK disk
    result "stage=disk_image sha256=$DEVICE_SHA"
}
bounded blk ram_stage "${fe_blk_limit:-200}"
bounded disk disk_stage "${fe_disk_limit:-300}"

# --- 3. network -----------------------------------------------------------------------
# The host's TCP source through QEMU's user network: bytes, seconds and sha256 received.
tcp_test() {
    if [ -z "$TCP_PORT" ]; then
        result "stage=tcp ok=0 reason=no-fe_tcp_port"
        # No host to download from (the xl route): another frontend gets bytes of our own.
        [ -n "$PEER" ] && dd if=/dev/urandom of=/tmp/peer_out.bin bs=$MIB count=4 2>/dev/null
        return
    fi
    t=$(now)
    timeout 60 nc -w 10 $GW $TCP_PORT </dev/null >/tmp/tcp.bin 2>/tmp/tcp.err
    rc=$?
    s=$(since "$t")
    result "stage=tcp rc=$rc bytes=$(stat -c %s /tmp/tcp.bin) s=$s port=$TCP_PORT"
    result "stage=tcp sha256=$(sha </tmp/tcp.bin)"
    [ $rc = 0 ] || notes_of /tmp/tcp.err
    tcp_upload_test
    # Kept for another frontend when there is one to send to.
    if [ -n "$PEER" ]; then mv /tmp/tcp.bin /tmp/peer_out.bin; else rm -f /tmp/tcp.bin; fi
}
# TCP's retransmitted segments so far (/proc/net/snmp's Tcp RetransSegs).
tcp_retransmitted() { awk '/^Tcp:/ { if (n++) print $13 }' /proc/net/snmp; }
# The same bytes back to the host's TCP sink, which closes once it has them all (busybox
# nc then ends): the frontend's TSO frames cut by stubvirt for the wire.
tcp_upload_test() {
    [ -n "$TCP_SINK" ] || { result "stage=tcp_up ok=0 reason=no-fe_tcp_sink"; return; }
    stats=/sys/class/net/eth0/statistics
    frames=$(cat $stats/tx_packets) bytes=$(cat $stats/tx_bytes) resent=$(tcp_retransmitted)
    t=$(now)
    timeout 60 nc -w 10 $GW $TCP_SINK </tmp/tcp.bin >/dev/null 2>/tmp/tcp_up.err
    rc=$?
    s=$(since "$t")
    # Frames eth0 sent and their mean size (TSO frames, or segments), and what TCP resent.
    frames=$(($(cat $stats/tx_packets) - frames)) bytes=$(($(cat $stats/tx_bytes) - bytes))
    result "stage=tcp_up rc=$rc s=$s port=$TCP_SINK tx_frames=$frames mean_bytes=$((bytes / (frames + 1))) retransmitted=$(($(tcp_retransmitted) - resent))"
    [ $rc = 0 ] || notes_of /tmp/tcp_up.err
}
net_stage() {
    if [ ! -e /sys/class/net/eth0 ]; then
        result "stage=net ok=0 reason=no-eth0"
        return
    fi
    mac=$(cat /sys/class/net/eth0/address)
    mtu=$(cat /sys/class/net/eth0/mtu)
    ip link set eth0 up
    ip addr add $IP/24 dev eth0
    sleep 1
    carrier=$(cat /sys/class/net/eth0/carrier 2>/dev/null || echo unknown)
    state=$(cat /sys/class/net/eth0/operstate)
    ping_ok=0
    # The first echo may go before ARP resolved: one reply of three is enough.
    ping -c 3 -W 2 $GW >/tmp/ping 2>&1 && ping_ok=1
    # busybox: "round-trip min/avg/max = 0.512/0.733/1.011 ms"
    rtt=$(sed -n 's/.*min\/avg\/max = [^/]*\/\([^/]*\)\/.*/\1/p' /tmp/ping)
    tx=$(cat /sys/class/net/eth0/statistics/tx_packets)
    rx=$(cat /sys/class/net/eth0/statistics/rx_packets)
    result "stage=net mac=$mac mtu=$mtu carrier=$carrier operstate=$state"
    result "stage=net ip=$IP gw=$GW ping_gw=$ping_ok ping_avg_ms=${rtt:-none} tx_packets=$tx rx_packets=$rx"
    tcp_test
}
# Another frontend's stream, from now on (bound to every address: eth0 comes up later).
# busybox nc half-closes when its stdin ends, and the sender then stops sending: this
# stdin stays open, and nc ends when the sender has sent everything and closed.
if [ -n "$LISTEN" ]; then
    sleep 600 | nc -l -p "$LISTEN" >/tmp/peer_in.bin 2>/tmp/peer_in.err &
    LISTENER=$!
fi
bounded net net_stage "${fe_net_limit:-90}"

# --- 4. frontend to frontend (several frontends on stubvirt's switch) -----------------
# The sender pings the other frontend, then sends it the 4 MiB the host sent (retrying
# while the other one is still busy with its own checks); the receiver reports what came.
peer_send() {
    ip=${PEER%:*} port=${PEER#*:}
    [ -s /tmp/peer_out.bin ] || { result "stage=peer_send ok=0 reason=nothing-to-send"; return; }
    t=$(now) tries=0 rc=1 ping_ok=0
    # The other frontend may not have its address yet: ping, then send, until both work.
    while [ $tries -lt 40 ]; do
        tries=$((tries + 1))
        [ $ping_ok = 1 ] || { ping -c 1 -W 2 "$ip" >/tmp/peer_ping 2>&1 && ping_ok=1; }
        if [ $ping_ok = 1 ] &&
            timeout 60 nc -w 5 "$ip" "$port" </tmp/peer_out.bin >/dev/null 2>/tmp/peer.err; then
            rc=0
            break
        fi
        sleep 2
    done
    result "stage=peer_send ip=$ip ping=$ping_ok rc=$rc tries=$tries s=$(since "$t")"
    result "stage=peer_send bytes=$(stat -c %s /tmp/peer_out.bin) sha256=$(sha </tmp/peer_out.bin)"
}
peer_receive() {
    t=$(now)
    while kill -0 "$LISTENER" 2>/dev/null; do sleep 1; done
    result "stage=peer_recv bytes=$(stat -c %s /tmp/peer_in.bin) waited_s=$(since "$t")"
    result "stage=peer_recv sha256=$(sha </tmp/peer_in.bin)"
}
[ -n "$PEER" ] && bounded peer_send peer_send "${fe_peer_limit:-150}"
[ -n "$LISTEN" ] && bounded peer_recv peer_receive "${fe_peer_limit:-150}"

# --- 5. driver resets during I/O (fe_rebind=ROUNDS) ------------------------------------
# Each round writes one acknowledged MiB to the RAM disk, starts reads of the disk and a
# TCP download, unbinds both virtio drivers (Linux resets the devices with requests in
# flight), binds them again, reads back every MiB acknowledged so far, and brings eth0
# back up. Then one more download from the host, checked by sha256.
virtio_of() { basename "$(readlink -f "$1")"; }
rebind_round() {
    i=$1 dev=$(by_serial stubvirt-ramdisk)
    [ -n "$dev" ] || return 1
    n=$((i % 15 + 1))
    head -c $MIB /dev/urandom >/tmp/mib
    if dd if=/tmp/mib of=$dev bs=$MIB seek=$n count=1 oflag=direct conv=notrunc 2>/dev/null; then
        grep -v "^$n " /tmp/acked >/tmp/acked.new
        echo "$n $(sha </tmp/mib)" >>/tmp/acked.new
        mv /tmp/acked.new /tmp/acked
    fi
    (while :; do dd if=$dev of=/dev/null bs=65536 count=64 iflag=direct 2>/dev/null; done) &
    reader=$!
    if [ -n "$TCP_PORT" ]; then
        timeout 20 nc -w 5 $GW $TCP_PORT </dev/null >/dev/null 2>&1 &
        downloads="$downloads $!"
    fi
    sleep 0.3
    echo $BLK_VIRTIO >/sys/bus/virtio/drivers/virtio_blk/unbind
    echo $NET_VIRTIO >/sys/bus/virtio/drivers/virtio_net/unbind
    kill $reader 2>/dev/null
    wait $reader 2>/dev/null
    echo $BLK_VIRTIO >/sys/bus/virtio/drivers/virtio_blk/bind
    echo $NET_VIRTIO >/sys/bus/virtio/drivers/virtio_net/bind
    for t in $(seq 1 40); do
        dev=$(by_serial stubvirt-ramdisk)
        [ -n "$dev" ] && break
        sleep 0.25
    done
    ok=1
    while read -r n want; do
        got=$(dd if=$dev bs=$MIB skip=$n count=1 iflag=direct 2>/dev/null | sha)
        [ "$got" = "$want" ] || ok=0
    done </tmp/acked
    [ $ok = 1 ] && readback=$((readback + 1))
    ip link set eth0 up 2>/dev/null
    ip addr add $IP/24 dev eth0 2>/dev/null
    ping -c 2 -W 2 $GW >/dev/null 2>&1 && pings=$((pings + 1))
    return 0
}
# MemAvailable (kB) with the page cache dropped: what the rounds leave allocated.
mem_available_kb() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
    awk '/^MemAvailable:/ {print $2}' /proc/meminfo
}
rebind_stage() {
    rounds=$fe_rebind readback=0 pings=0 done_rounds=0 downloads= mem_before=$(mem_available_kb)
    BLK_VIRTIO=$(virtio_of /sys/block/${RAM#/dev/}/device)
    NET_VIRTIO=$(virtio_of /sys/class/net/eth0/device)
    : >/tmp/acked
    for i in $(seq 1 $rounds); do
        rebind_round $i || break
        done_rounds=$i
    done
    errors=$(dmesg | grep -c -e "still in use" -e "is not a head")
    # The rounds' downloads end within their timeout; their sockets would count as lost.
    kill $downloads 2>/dev/null
    sleep 1
    result "stage=rebind rounds=$done_rounds of=$rounds readback_ok=$readback pings=$pings kernel_errors=$errors mem_available_kb=$mem_before,$(mem_available_kb)"
    if [ -n "$TCP_PORT" ]; then
        timeout 60 nc -w 10 $GW $TCP_PORT </dev/null >/tmp/after.bin 2>/dev/null
        result "stage=rebind tcp_bytes=$(stat -c %s /tmp/after.bin) tcp_sha256=$(sha </tmp/after.bin)"
    fi
}
[ -n "${fe_rebind:-}" ] && [ -n "$RAM" ] && bounded rebind rebind_stage "${fe_rebind_limit:-240}"

# --- 6. the other frontend crashes (fe_survive=IP:PORT) --------------------------------
# fe_io on the RAM disk and a download from the host run while this frontend tells the
# other one to crash; then both once more. stubvirt must release the crashed frontend
# and serve this one throughout: every request succeeds, the bytes are the host's.
survive_stage() {
    ip=${fe_survive%:*} port=${fe_survive#*:}
    fe_io $RAM "${fe_survive_io_s:-3}" >/tmp/during.out 2>/tmp/during.err &
    io=$!
    timeout 90 nc -w 10 $GW $TCP_PORT </dev/null >/tmp/during.bin 2>/dev/null &
    download=$!
    sleep 1
    tries=1
    until echo crash | timeout 5 nc -w 2 "$ip" "$port" >/dev/null 2>&1; do
        [ $tries -ge 60 ] && break
        tries=$((tries + 1))
        sleep 0.5
    done
    result "stage=survive told_after_tries=$tries uptime=$(now)"
    wait $io
    io_rc=$?
    wait $download
    while read -r line; do result "stage=survive_during $line"; done </tmp/during.out
    [ $io_rc = 0 ] || notes_of /tmp/during.err
    result "stage=survive io_rc=$io_rc"
    result "stage=survive tcp_sha256=$(sha </tmp/during.bin)"
    peer_ping=0
    ping -c 1 -W 2 "$ip" >/dev/null 2>&1 && peer_ping=1
    fe_io $RAM 1 >/tmp/after.out 2>/tmp/after.err
    after_rc=$?
    while read -r line; do result "stage=survive_after $line"; done </tmp/after.out
    [ $after_rc = 0 ] || notes_of /tmp/after.err
    timeout 60 nc -w 10 $GW $TCP_PORT </dev/null >/tmp/after.bin 2>/dev/null
    result "stage=survive after_io_rc=$after_rc peer_ping=$peer_ping"
    result "stage=survive tcp2_sha256=$(sha </tmp/after.bin)"
}
[ -n "${fe_survive:-}" ] && [ -n "$RAM" ] && [ -n "$TCP_PORT" ] &&
    bounded survive survive_stage "${fe_survive_limit:-180}"

finish
