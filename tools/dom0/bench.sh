# The side-by-side bench's dom0 (`cargo xtask bench-e2e`), sourced by init.sh when dom0's
# command line has dom0_bench=1, once stubvirt runs as a driver domain. dom0 is also the
# incumbent: Linux's blkback serves each frontend a RAM disk (brd) and netback its vif on
# a bridge. Two frontends, each with a virtio disk and NIC from stubvirt and a PV disk and
# vif from dom0 (/guest/bench-frontend.cfg); the first measures both disks
# (tools/frontend/bench.sh), then the two send each other TCP streams over both.
for m in brd llc stp bridge xen-blkback xen-netback; do
    case $m in
    # One 16 MiB RAM disk per frontend, as stubvirt's (ramdisk_mb=16), without partitions.
    brd) args="rd_nr=2 rd_size=16384 max_part=0" ;;
    *) args="" ;;
    esac
    insmod /lib/modules/$m.ko $args || say "insmod $m failed"
done
# Linux bridges start without STP, so a port forwards as soon as it joins (busybox's
# brctl has no stp command).
brctl addbr xenbr0 && ip link set xenbr0 up && say "bridge xenbr0 up"

# Frontend $1 (number $2, RAM disk /dev/ram$(($2 - 1))), created paused, with bench
# parameters $3 on its command line.
bench_frontend() {
    sed -e "s/@NAME@/$1/" -e "s/@N@/$2/" -e "s/@RAM@/$(($2 - 1))/" -e "s|@ARGS@|$3|" \
        /guest/bench-frontend.cfg >/tmp/$1.cfg
    prefixed create-$1 timeout 120 xl create -p /tmp/$1.cfg
    say "$1 domid=$(xl domid $1 2>/dev/null)"
}
# How long: rounds, seconds per TCP stream and per fe_io figure (dom0's command line).
length="fe_bench_rounds=${dom0_bench_rounds:-2} fe_bench_s=${dom0_bench_s:-5} fe_io_s=${dom0_bench_io_s:-2}"
bench_frontend fe1 1 "fe_bench_me=1 fe_bench_peer=2 fe_bench_disk=1 fe_bench_first=1 $length"
bench_frontend fe2 2 "fe_bench_me=2 fe_bench_peer=1 $length"
xenstore-ls -f /local/domain/0/backend 2>&1 | grep -E '/(state|physical-device|hotplug-status|bridge) ' |
    sed "s/^/XL-DOM0 pv-keys /"
prefixed unpause-fe1 xl unpause fe1
prefixed unpause-fe2 xl unpause fe2
wait_gone fe1 900
wait_gone fe2 300
console_of fe1 FE1
console_of fe2 FE2
# What the PV network looked like: the bridge's ports and each interface's counters.
brctl show 2>&1 | sed "s/^/XL-DOM0 bridge /"
ip -s link 2>&1 | sed "s/^/XL-DOM0 links /"
prefixed list xl list
