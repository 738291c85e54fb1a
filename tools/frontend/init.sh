#!/bin/busybox sh
# The frontend domU's init (busybox initramfs) for `cargo xtask demo`.
#
# 1. Readiness handshake, bounded: read the virtio-mmio magic of each device window from
#    userspace (busybox devmem in a subshell). Before stubvirt registered its ioreq range,
#    Xen answers the access with a data abort: only that subshell dies (SIGBUS). Once the
#    magic reads back, the virtio modules are loaded (virtio_mmio last: it probes).
# 2. Block tests on /dev/vda, network checks on eth0, throughput; one
#    `FRONTEND-RESULT key=value ...` line per stage; `FRONTEND-RESULT done=1` at the end.
# Kernel command line parameters (passed as environment by Linux): fe_wait (seconds to
# wait for the backend, default 60), fe_ip, fe_gw.
/bin/busybox mkdir -p /proc /sys /dev /tmp /mnt /sbin /usr/bin /usr/sbin
# --install finds busybox through /proc/self/exe
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp

WAIT=${fe_wait:-60}
IP=${fe_ip:-10.0.2.15}
GW=${fe_gw:-10.0.2.2}
BLK_BASE=0x2000000
NET_BASE=0x2000200
MAGIC=0x74726976
MIB=1048576

result() { echo "FRONTEND-RESULT $*"; }
note() { echo "FRONTEND: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
# seconds between two uptime readings
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# MB/s for $1 bytes in $2 seconds
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s <= 0) s = 0.01; printf "%.1f", n / 1048576 / s }'; }
finish() {
    result "done=1 uptime=$(now)"
    # A stuck device would block sync too.
    [ -z "$stuck" ] && sync
    poweroff -f
}
# devmem in a subshell: a data abort kills only the subshell.
magic_at() { (devmem "$1" 32) 2>/dev/null | tr 'A-F' 'a-f'; }

note "userspace up at $(now) s; waiting up to $WAIT s for the backend"
result "stage=boot uptime=$(now) cpus=$(grep -c ^processor /proc/cpuinfo) mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)"

# --- 1. readiness handshake -----------------------------------------------------------
t0=$(now)
tries=0
blk=absent
net=absent
while :; do
    tries=$((tries + 1))
    [ "$blk" = absent ] && [ "$(magic_at $BLK_BASE)" = "$MAGIC" ] && blk=ready
    [ "$net" = absent ] && [ "$(magic_at $NET_BASE)" = "$MAGIC" ] && net=ready
    [ "$blk" = ready ] && [ "$net" = ready ] && break
    waited=$(since "$t0")
    if awk -v w="$waited" -v m="$WAIT" 'BEGIN { exit !(w >= m) }'; then
        break
    fi
    sleep 0.5
done
waited=$(since "$t0")
if [ "$blk" = absent ] && [ "$net" = absent ]; then
    result "stage=handshake backend=absent waited_s=$waited tries=$tries"
    note "the backend never answered at $BLK_BASE or $NET_BASE within $WAIT s (no virtio magic)"
    finish
fi
result "stage=handshake backend=ready blk=$blk net=$net waited_s=$waited tries=$tries"
if [ "$net" = ready ] && [ "$blk" = absent ]; then
    # Give a late block device a few more seconds (its range may be registered second).
    for i in 1 2 3 4 5 6 7 8 9 10; do
        [ "$(magic_at $BLK_BASE)" = "$MAGIC" ] && blk=ready && break
        sleep 0.5
    done
fi

# In dependency order; virtio_mmio last (loading it probes the devices). A module whose
# dependencies are not loaded yet is retried in the next round.
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
# Bounded wait for the drivers to bind.
for i in $(seq 1 40); do
    { [ "$blk" = absent ] || [ -b /dev/vda ]; } && { [ "$net" = absent ] || [ -e /sys/class/net/eth0 ]; } && break
    sleep 0.25
done
result "stage=probe vda=$([ -b /dev/vda ] && echo yes || echo no) eth0=$([ -e /sys/class/net/eth0 ] && echo yes || echo no) uptime=$(now)"
dmesg | grep -i -E 'virtio|vda|xen.grant' | tail -8

# --- 2. block -------------------------------------------------------------------------
block_tests() {
    size=$(blockdev --getsize64 /dev/vda)
    ro=$(blockdev --getro /dev/vda)
    result "stage=blk size_bytes=$size ro=$ro ssz=$(blockdev --getss /dev/vda)"
    [ "$ro" = 0 ] || { result "stage=blk_verify ok=skipped reason=read-only"; return; }
    regions=$((size / MIB))
    tail_bytes=$((size % MIB))
    # 2 MiB of random data; region k gets the 1 MiB at offset (k * 4 KiB) % 1 MiB of it,
    # so no two neighbouring regions hold the same bytes.
    dd if=/dev/urandom of=/tmp/pat bs=$MIB count=2 2>/dev/null
    # Mixed request sizes and modes, region by region.
    sizes="512 4096 65536 $MIB 16384 262144 1024 131072"
    set -- $sizes
    nsizes=$#
    t=$(now)
    k=0
    direct=0
    buffered=0
    while [ $k -lt $regions ]; do
        i=$((k % nsizes + 1))
        eval bs=\${$i}
        off=$(((k * 4096) % MIB))
        if [ $((k % 2)) = 0 ]; then
            flag=oflag=direct
            direct=$((direct + 1))
        else
            flag=conv=fsync
            buffered=$((buffered + 1))
        fi
        dd if=/tmp/pat of=/dev/vda iflag=skip_bytes,fullblock skip=$off bs=$bs count=$((MIB / bs)) \
            seek=$((k * MIB / bs)) $flag conv=notrunc 2>/dev/null || { result "stage=blk_write ok=0 region=$k bs=$bs"; return; }
        k=$((k + 1))
    done
    if [ $tail_bytes -gt 0 ]; then
        dd if=/tmp/pat of=/dev/vda bs=512 count=$((tail_bytes / 512)) seek=$((regions * MIB / 512)) \
            oflag=direct conv=notrunc 2>/dev/null
    fi
    sync
    blockdev --flushbufs /dev/vda
    wrote_s=$(since "$t")
    expected=$( {
        k=0
        while [ $k -lt $regions ]; do
            dd if=/tmp/pat iflag=skip_bytes skip=$(((k * 4096) % MIB)) bs=$MIB count=1 2>/dev/null
            k=$((k + 1))
        done
        [ $tail_bytes -gt 0 ] && dd if=/tmp/pat bs=512 count=$((tail_bytes / 512)) 2>/dev/null
    } | sha256sum | cut -d' ' -f1)
    got_direct=$(dd if=/dev/vda bs=$MIB iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
    echo 3 > /proc/sys/vm/drop_caches
    got_buffered=$(dd if=/dev/vda bs=65536 2>/dev/null | sha256sum | cut -d' ' -f1)
    ok=0
    [ "$expected" = "$got_direct" ] && [ "$expected" = "$got_buffered" ] && ok=1
    # Xen cuts guest console lines at about 128 characters: several short lines per stage.
    result "stage=blk_verify ok=$ok bytes=$size regions=$regions direct_regions=$direct buffered_regions=$buffered"
    result "stage=blk_verify sizes=$(echo $sizes | tr ' ' ',') write_s=$wrote_s"
    result "stage=blk_verify sha256=$(echo $expected | cut -c1-16) direct_read=$(echo $got_direct | cut -c1-16) buffered_read=$(echo $got_buffered | cut -c1-16)"

    # Throughput: 1 MiB sequential (4 passes over at most 32 MiB, so that /proc/uptime's
    # 10 ms resolution matters little) and 4 KiB (QD 1, O_DIRECT).
    mib=$regions
    [ $mib -gt 32 ] && mib=32
    if [ $mib -gt 0 ]; then
        t=$(now)
        for pass in 1 2 3 4; do
            dd if=/dev/zero of=/dev/vda bs=$MIB count=$mib oflag=direct conv=notrunc 2>/dev/null
        done
        s=$(since "$t")
        w1=$(rate $((4 * mib * MIB)) "$s")
        t=$(now)
        for pass in 1 2 3 4; do
            dd if=/dev/vda of=/dev/null bs=$MIB count=$mib iflag=direct 2>/dev/null
        done
        s=$(since "$t")
        r1=$(rate $((4 * mib * MIB)) "$s")
        n4=$((mib * 256))
        [ $n4 -gt 2048 ] && n4=2048
        t=$(now); dd if=/dev/vda of=/dev/null bs=4096 count=$n4 iflag=direct 2>/dev/null; s=$(since "$t")
        r4=$(awk -v n=$n4 -v s="$s" 'BEGIN { if (s <= 0) s = 0.01; printf "%.0f", n / s }')
        t=$(now); dd if=/dev/zero of=/dev/vda bs=4096 count=$n4 oflag=direct conv=notrunc 2>/dev/null; s=$(since "$t")
        w4=$(awk -v n=$n4 -v s="$s" 'BEGIN { if (s <= 0) s = 0.01; printf "%.0f", n / s }')
        # Random 4 KiB reads: one dd per request (busybox has no fio), so this includes
        # the cost of starting a process each time.
        blocks=$((size / 4096))
        t=$(now)
        for j in $(seq 1 64); do
            dd if=/dev/vda of=/dev/null bs=4096 count=1 skip=$(( ($j * 7919 * 13) % blocks )) iflag=direct 2>/dev/null
        done
        s=$(since "$t")
        rr=$(awk -v s="$s" 'BEGIN { if (s <= 0) s = 0.01; printf "%.0f", 64 / s }')
        result "stage=blk_perf seq1m_write_mbs=$w1 seq1m_read_mbs=$r1 seq1m_mib=$((4 * mib))"
        result "stage=blk_perf seq4k_read_iops=$r4 seq4k_write_iops=$w4 n4k=$n4"
        result "stage=blk_perf rand4k_read_iops_with_exec=$rr"
    fi

    # File system: mkfs, mount, create/copy/delete, unmount, mount again and check.
    if mke2fs -q /dev/vda >/dev/null 2>&1 && mount -t ext2 /dev/vda /mnt; then
        dd if=/tmp/pat of=/mnt/a bs=65536 count=16 2>/dev/null
        cp /mnt/a /mnt/b
        mkdir /mnt/d
        for j in $(seq 1 50); do echo "file $j" > /mnt/d/f$j; done
        rm /mnt/a /mnt/d/f1 /mnt/d/f2
        sync
        want=$(dd if=/tmp/pat bs=65536 count=16 2>/dev/null | sha256sum | cut -d' ' -f1)
        umount /mnt
        echo 3 > /proc/sys/vm/drop_caches
        fs_ok=0
        if mount -t ext2 /dev/vda /mnt; then
            got=$(sha256sum /mnt/b | cut -d' ' -f1)
            n=$(ls /mnt/d | wc -l)
            [ "$got" = "$want" ] && [ "$n" = 48 ] && [ ! -e /mnt/a ] && fs_ok=1
            umount /mnt
        fi
        result "stage=fs mkfs=ext2 ok=$fs_ok files=$n fsck=unavailable-in-busybox"
    else
        result "stage=fs mkfs=ext2 ok=0 reason=mke2fs-or-mount-failed"
    fi
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
        if awk -v w="$(since "$t")" -v m="$limit" 'BEGIN { exit !(w >= m) }'; then
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

blk_stage() {
    if [ -b /dev/vda ]; then
        block_tests
    else
        result "stage=blk ok=0 reason=no-vda"
    fi
}
bounded blk blk_stage "${fe_blk_limit:-200}"

# --- 3. network -----------------------------------------------------------------------
net_stage() {
    if [ -e /sys/class/net/eth0 ]; then
        mac=$(cat /sys/class/net/eth0/address)
        mtu=$(cat /sys/class/net/eth0/mtu)
        ip link set eth0 up
        ip addr add $IP/24 dev eth0
        sleep 1
        carrier=$(cat /sys/class/net/eth0/carrier 2>/dev/null || echo unknown)
        state=$(cat /sys/class/net/eth0/operstate)
        ping_ok=0
        ping -c 2 -W 1 $GW >/tmp/ping 2>&1 && ping_ok=1
        tx=$(cat /sys/class/net/eth0/statistics/tx_packets)
        rx=$(cat /sys/class/net/eth0/statistics/rx_packets)
        result "stage=net mac=$mac mtu=$mtu carrier=$carrier operstate=$state"
        result "stage=net ip=$IP gw=$GW ping_gw=$ping_ok tx_packets=$tx rx_packets=$rx"
    else
        result "stage=net ok=0 reason=no-eth0"
    fi
}
bounded net net_stage "${fe_net_limit:-30}"

finish
