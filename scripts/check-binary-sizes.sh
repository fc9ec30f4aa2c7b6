#!/usr/bin/env bash
# Check every guest image's extent in memory -- from its lowest load
# address to the end of .bss, i.e. what it really occupies in the guest --
# against its cap. The cap is not repeated here: each ELF carries it as the
# absolute symbol __schedlab_cap, put there at link time from shared/abi
# (guest/build). Fails over the cap, warns at >= 85 %.
#
#   scripts/check-binary-sizes.sh [DIR]    (default target/guest)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${CARGO_TARGET_DIR:-target}/guest}
WARN_PCT=85
status=0

# Policy images have no flat .bin: their ELF is what the host embeds.
expected=(kernel $(./build.sh operations) $(./build.sh policies | sed 's|^|policies/|'))
for name in "${expected[@]}"; do
    elf="$dir/$name.elf"
    if [ ! -f "$elf" ]; then
        echo "FAIL $name: $elf missing (run ./build.sh guests)"
        status=1
        continue
    fi
    cap_hex=$(nm "$elf" | awk '$3 == "__schedlab_cap" { print $1 }')
    if [ -z "$cap_hex" ]; then
        echo "FAIL $name: no __schedlab_cap symbol (not linked through guest/build)"
        status=1
        continue
    fi
    cap=$((16#$cap_hex))
    lo=-1
    hi=0
    # Program headers: LOAD offset vaddr paddr filesz memsz flags align.
    while read -r vaddr memsz; do
        v=$((vaddr))
        m=$((memsz))
        if [ "$lo" -lt 0 ] || [ "$v" -lt "$lo" ]; then lo=$v; fi
        if [ $((v + m)) -gt "$hi" ]; then hi=$((v + m)); fi
    done < <(readelf -lW "$elf" | awk '$1 == "LOAD" { print $3, $6 }')
    extent=$((hi - lo))
    pct=$((extent * 100 / cap))
    bin_size=$(stat -c %s "$dir/$name.bin" 2>/dev/null || echo 0)
    line=$(printf "%-17s %7d bytes in memory (.bin %7d) of cap %7d: %3d%%" "$name" "$extent" "$bin_size" "$cap" "$pct")
    if [ "$extent" -gt "$cap" ]; then
        echo "FAIL $line"
        status=1
    elif [ "$pct" -ge "$WARN_PCT" ]; then
        echo "WARN $line (>= $WARN_PCT %)"
    else
        echo "ok   $line"
    fi
done
exit $status
