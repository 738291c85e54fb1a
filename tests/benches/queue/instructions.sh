#!/bin/bash
# Instructions per chain of the queue bench, counted by callgrind: deterministic where
# the bench's wall-clock rates move with whatever else shares the cores.
#
# usage: tests/benches/queue/instructions.sh [SHAPE...]   (default: every shape)
#        PHASES=1 ... also splits stubvirt's free-memory figure by phase
#
# Per shape and bench id, the bench binary runs under callgrind for one second of
# criterion's --profile-time (no analysis). stubvirt: the inclusive count of `serve_pass`
# divided by the chains it served. rust-vmm: `rust_vmm_rounds` less the driver's refill
# (`make_available`) and the clock reads, divided by the chains of its rounds. The
# phases are the inclusive counts of the functions that are out of line in the build
# measured; PageBatch's add_span, map and unmap_all and the indirect walk are inlined
# in the product, so for the phase split build with those four `#[inline(never)]`
# (which adds about 10 % of calls).
set -euo pipefail
cd "$(dirname "$0")/../../.."
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(1desc blk_3desc blk_16seg blk_3desc_indirect blk_16seg_indirect)
bin=$(cargo bench -p stubvirt-tests --bench queue --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Inclusive count and calls of every callee, summed over call sites: "calls cost name".
callees() {
    awk '
    function name(s,   id) {
        if (match(s, /^\([0-9]+\)/)) {
            id = substr(s, 1, RLENGTH)
            if (length(s) > RLENGTH) names[id] = substr(s, RLENGTH + 2)
            return names[id]
        }
        return s
    }
    /^fn=/ { name(substr($0, 4)); next }
    /^cfn=/ { callee = name(substr($0, 5)); next }
    /^calls=/ { split(substr($0, 7), a, " "); pending = a[1]; next }
    pending != "" { calls[callee] += pending; cost[callee] += $NF; pending = "" }
    END { for (f in cost) print calls[f], cost[f], f }' "$1"
}

# The inclusive count (or, with "calls", the calls) of functions whose name ends in $2.
sum() { awk -v suffix="$2" -v field="${3:-2}" '
    { f = $0; sub(/^[0-9]+ [0-9]+ /, "", f) }
    length(f) >= length(suffix) && substr(f, length(f) - length(suffix) + 1) == suffix { s += $field }
    END { print s + 0 }' "$1"; }

chains() { case $1 in blk_16seg) echo 14 ;; *) echo 64 ;; esac; }

printf '%-20s %14s %14s %14s %10s %6s\n' shape stubvirt_fast stubvirt_routed stubvirt_simxen rust_vmm ratio
for shape in "${shapes[@]}"; do
    per_chain=$(chains "$shape")
    row=()
    for id in stubvirt_fast stubvirt_routed stubvirt_simxen rust_vmm; do
        valgrind --tool=callgrind --callgrind-out-file="$out/$id.cg" "$bin" --bench \
            --profile-time 1 "queue/$shape/$id\$" >/dev/null 2>&1
        callees "$out/$id.cg" >"$out/$id.sum"
        if [ $id = rust_vmm ]; then
            rounds=$(sum "$out/$id.sum" 'queue::layout::make_available' 1)
            timed=$(($(sum "$out/$id.sum" 'queue::rust_vmm::rust_vmm_rounds') -
                $(sum "$out/$id.sum" 'queue::layout::make_available') -
                $(sum "$out/$id.sum" '<std::time::Instant>::now') -
                $(sum "$out/$id.sum" '<std::time::Instant>::elapsed')))
        else
            rounds=$(sum "$out/$id.sum" 'devices::queue::serve::serve_pass' 1)
            timed=$(sum "$out/$id.sum" 'devices::queue::serve::serve_pass')
        fi
        row+=($((timed / (rounds * per_chain))))
    done
    ratio=$(awk -v a="${row[3]}" -v b="${row[0]}" 'BEGIN { printf "%.2fx", a / b }')
    printf '%-20s %14s %14s %14s %10s %6s\n' "$shape" "${row[@]}" "$ratio"
    if [ -n "${PHASES:-}" ]; then
        f="$out/stubvirt_fast.sum"
        n=$(($(sum "$f" 'devices::queue::serve::serve_pass' 1) * per_chain))
        for phase in 'ChainBatch::collect' '>::walk_indirect' 'PageBatch<_>::add_span' \
            'PageBatch<_>::map' 'PageBatch<_>::unmap_all' '>::map_all' '>::read' '>::write' \
            'SplitQueue::peek_heads' 'SplitQueue::push_used_all'; do
            printf '    %-28s %6d\n' "$phase" $(($(sum "$f" "$phase") / n))
        done
    fi
done
