# The side-by-side bench of a Linux frontend (`cargo xtask bench-e2e`), sourced by init.sh
# after the virtio devices are probed when fe_bench=1. The frontend has each device
# twice: a virtio disk and NIC served by stubvirt, and a PV disk (xvda) and vif served by
# Linux's blkback and netback in dom0. Every workload runs on both in turn, alternating
# which goes first from round to round, so that drift of the emulated machine falls on
# both. Parameters: fe_bench_me, fe_bench_peer (last octet of this frontend's and the
# other's addresses: 10.0.3.N over stubvirt, 10.0.4.N over Linux), fe_bench_disk=1 (run
# fe_io on both disks), fe_bench_first=1 (send first; the other sends once it received),
# fe_bench_rounds, fe_bench_s (seconds per TCP stream), fe_io_s (seconds per fe_io figure).
ME=${fe_bench_me:?}
OTHER=${fe_bench_peer:?}
ROUNDS=${fe_bench_rounds:-2}
TCP_S=${fe_bench_s:-5}
# The port each backend's streams arrive on.
PORT_stubvirt=5101
PORT_linux=5102
NET_stubvirt=10.0.3
NET_linux=10.0.4

# The backends in round $1's order.
order() { [ $(($1 % 2)) = 1 ] && echo "stubvirt linux" || echo "linux stubvirt"; }
# The network interface whose MAC starts with $1.
iface_with() {
    for d in /sys/class/net/*; do
        case "$(cat $d/address 2>/dev/null)" in $1*) echo ${d##*/} && return ;; esac
    done
}

# The other frontend's streams, one per round and backend, from now on (bound to
# every address: the interfaces get theirs below).
for b in stubvirt linux; do
    eval port=\$PORT_$b
    timeout 900 fe_tcp recv $port $ROUNDS >/tmp/recv_$b 2>/tmp/recv_$b.err &
    eval RECEIVER_$b=$!
done

for m in xen-blkfront xen-netfront; do
    insmod /lib/modules/$m.ko 2>/tmp/insmod.err || notes_of /tmp/insmod.err 2
done
# netfront and blkfront connect through xenstore once loaded.
for i in $(seq 1 80); do
    [ -b /dev/xvda ] && [ -n "$(iface_with 00:16:3e:)" ] && break
    sleep 0.25
done
IF_stubvirt=$(iface_with 02:53:56:)
IF_linux=$(iface_with 00:16:3e:)
DISK_stubvirt=$RAM
DISK_linux=$([ -b /dev/xvda ] && echo /dev/xvda)
for b in stubvirt linux; do
    eval dev=\$IF_$b net=\$NET_$b
    [ -n "$dev" ] || continue
    ip addr add $net.$ME/24 dev $dev
    ip link set $dev up
done
result "stage=bench_setup if_stubvirt=${IF_stubvirt:-none} if_linux=${IF_linux:-none}"
result "stage=bench_setup disk_stubvirt=${DISK_stubvirt:-none} disk_linux=${DISK_linux:-none}"


# --- block: fe_io on each backend's disk ----------------------------------------------
if [ -n "${fe_bench_disk:-}" ]; then
    for round in $(seq 1 $ROUNDS); do
        for b in $(order $round); do
            eval dev=\$DISK_$b
            [ -n "$dev" ] || { result "stage=bench_blk backend=$b ok=0 reason=no-disk"; continue; }
            fe_io $dev "${fe_io_s:-2}" >/tmp/fe_io.out 2>/tmp/fe_io.err ||
                { result "stage=bench_blk backend=$b round=$round ok=0 reason=fe_io-failed"; notes_of /tmp/fe_io.err 2; }
            while read -r line; do result "stage=bench_blk backend=$b round=$round $line"; done </tmp/fe_io.out
        done
    done
fi

# --- network: round-trip time, then TCP streams to the other frontend ----------------
for b in stubvirt linux; do
    eval net=\$NET_$b
    # Until the other frontend has its address (it may still be booting), then measured.
    n=0
    until ping -c 1 -W 1 $net.$OTHER >/dev/null 2>&1; do
        n=$((n + 1))
        [ $n -ge 120 ] && break
    done
    ping -c 20 -i 0.2 $net.$OTHER >/tmp/ping 2>&1
    rtt=$(sed -n 's/.*min\/avg\/max = [^/]*\/\([^/]*\)\/.*/\1/p' /tmp/ping)
    result "stage=bench_ping backend=$b to=$net.$OTHER avg_ms=${rtt:-none}"
    if [ -z "$rtt" ]; then
        eval dev=\$IF_$b
        ip -s link show $dev 2>&1 | notes_of /dev/stdin 6
    fi
done
# TCP's retransmitted segments so far (/proc/net/snmp's Tcp RetransSegs).
retransmitted() { awk '/^Tcp:/ { if (n++) print $13 }' /proc/net/snmp; }
# Interface $1's counter $2.
counter() { cat /sys/class/net/$1/statistics/$2; }
send_all() {
    for round in $(seq 1 $ROUNDS); do
        for b in $(order $round); do
            eval net=\$NET_$b port=\$PORT_$b dev=\$IF_$b
            frames=$(counter $dev tx_packets) bytes=$(counter $dev tx_bytes) resent=$(retransmitted)
            out=$(timeout 300 fe_tcp send $net.$OTHER $port $TCP_S 2>/tmp/send.err) ||
                notes_of /tmp/send.err 2
            result "stage=bench_tcp_send backend=$b round=$round to=$net.$OTHER ${out:-ok=0}"
            # Frames the interface sent and their mean size (TSO's 64 KiB frames, or
            # segments), and the segments TCP sent again.
            frames=$(($(counter $dev tx_packets) - frames)) bytes=$(($(counter $dev tx_bytes) - bytes))
            result "stage=bench_tcp_frames backend=$b round=$round tx_frames=$frames mean_bytes=$((bytes / (frames + 1))) retransmitted=$(($(retransmitted) - resent))"
        done
    done
}
receive_all() {
    for b in stubvirt linux; do
        eval pid=\$RECEIVER_$b
        wait $pid || notes_of /tmp/recv_$b.err 2
        round=0
        while read -r line; do
            round=$((round + 1))
            result "stage=bench_tcp backend=$b round=$round from=$OTHER to=$ME $line"
        done </tmp/recv_$b
    done
}
if [ -n "${fe_bench_first:-}" ]; then
    send_all
    receive_all
else
    receive_all
    send_all
fi
# How TCP fared over both networks together: timeouts, tail-loss probes, duplicates
# the other side reported (a retransmission that was not needed), checksum errors.
tcp_ext() {
    awk '/^TcpExt:/ { if (seen++) { for (i = 2; i <= NF; i++) v[names[i]] = $i } else {
        for (i = 2; i <= NF; i++) names[i] = $i } }
        END { printf "timeouts=%s loss_probes=%s dsack_recv=%s spurious_rto=%s ofo_queue=%s",
            v["TCPTimeouts"], v["TCPLossProbes"], v["TCPDSACKRecv"], v["TCPSpuriousRTOs"], v["TCPOFOQueue"] }' \
        /proc/net/netstat
}
result "stage=bench_tcp_stats $(tcp_ext) csum_errors=$(awk '/^Tcp:/ { if (n++) print $16 }' /proc/net/snmp)"
for b in stubvirt linux; do
    eval dev=\$IF_$b
    result "stage=bench_tcp_stats backend=$b rx_dropped=$(counter $dev rx_dropped) tx_dropped=$(counter $dev tx_dropped)"
done
