#!/bin/bash
# Builds the frontend Linux (arm64 Image + modules) from Debian's linux-source tarball.
# usage: build-linux.sh TARBALL CONFIG OUT
# Run by `cargo xtask demo` (tools/src/frontend/kernel.rs); part of the cache key.
set -euo pipefail
tarball=$1 config=$2 out=$3
work=$out/build
rm -rf "$work"
mkdir -p "$work"
echo "==> unpacking $(basename "$tarball")"
tar -C "$work" -xf "$tarball"
src=$(echo "$work"/linux-source-*)
m=(make -C "$src" ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-)
echo "==> allnoconfig + $(basename "$config")"
KCONFIG_ALLCONFIG=$config "${m[@]}" -s allnoconfig
while read -r line; do
    if ! grep -qx "$line" "$src/.config"; then
        echo "the kernel config lost $line" >&2
        exit 1
    fi
done < <(grep -E '^CONFIG_[A-Z0-9_]+=(y|m)$' "$config")
echo "==> make Image modules (-j$(nproc)); a dot per 100 compiler steps"
started=$(date +%s)
"${m[@]}" -j"$(nproc)" Image modules 2>&1 | awk -v t0="$started" '
    / error|Error |error:/ { print; fflush() }
    { n++ }
    n % 100 == 0 { printf "."; fflush() }
    n % 2000 == 0 { printf " %d steps, %d s\n", n, systime() - t0; fflush() }
    END { printf "\n%d steps\n", n }'
mkdir -p "$out/modules"
find "$src" -name '*.ko' -exec cp {} "$out/modules/" \;
cp "$src/.config" "$out/config"
cp "$src/arch/arm64/boot/Image" "$out/Image.partial"
mv "$out/Image.partial" "$out/Image"
rm -rf "$work"
echo "==> frontend Linux built in $(( $(date +%s) - started )) s"
