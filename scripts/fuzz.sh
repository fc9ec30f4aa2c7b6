#!/usr/bin/env bash
# Fuzz the host's readers of untrusted input under AFL++ (cargo-afl, on
# stable Rust): every target in host/fuzz (or those named), one after the
# other -- one fuzzer process at a time, since the machine is shared --
# for FUZZ_SECONDS each, starting from host/fuzz/corpus/NAME/. Prints the
# executions, crashes and hangs of each from AFL++'s fuzzer_stats, and
# copies every crash and hang input into host/fuzz/crashes/NAME/, where
# `cargo test` replays it: a crash is a bug to fix in the parser, and its
# input stays there as the regression test.
#
#   scripts/fuzz.sh [TARGET...]         FUZZ_SECONDS=60 by default
#   scripts/fuzz.sh --cmin TARGET...    merge AFL++'s queue from the last
#                                       run into corpus/NAME, minimised
#
# Installs cargo-afl (which builds AFL++ from its crate) when missing.
# Exit 1 if any target crashed or hung.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(tlv protocol kstate scenario compare bpf_object)
SECONDS_EACH=${FUZZ_SECONDS:-60}
# A run over this is a hang: the targets take microseconds to a few
# milliseconds per input even in the instrumented build.
TIMEOUT_MS=${FUZZ_TIMEOUT_MS:-1000}
# Address-space limit for the target: a runaway allocation is a crash,
# not a machine out of memory.
MEM_MB=${FUZZ_MEM_MB:-4096}
OUT=${FUZZ_OUT:-target/fuzz}
# Separate from target/: cargo-afl's RUSTFLAGS would otherwise make every
# plain build after it start from scratch.
TARGET_DIR=${FUZZ_TARGET_DIR:-target/afl}
BIN="$TARGET_DIR/release"

cmin=false
if [[ ${1:-} == --cmin ]]; then
    cmin=true
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "fuzz: no target '$t' (${ALL_TARGETS[*]})" >&2; exit 64; }
done

if ! cargo afl --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-afl (builds AFL++; takes a few minutes)"
    cargo install --locked cargo-afl
fi
# The AFL++ runtime is built per rustc version; `config --build` refuses
# (and changes nothing) when it is already there.
if ! out=$(cargo afl config --build 2>&1) && ! grep -q "already built" <<<"$out"; then
    echo "$out" >&2
    exit 1
fi
cargo afl build --release --target-dir "$TARGET_DIR" -p schedlab-fuzz --features afl --bins

export AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
export AFL_NO_UI=1 AFL_QUIET=1

if $cmin; then
    # The shell afl-cmin: the Python one that `cargo afl cmin` runs (AFL++
    # 4.40c) records no coverage from these persistent-mode binaries.
    rustc_version=$(rustc --version | awk '{print $2}')
    afl_bin=$(ls -d "${XDG_DATA_HOME:-$HOME/.local/share}"/afl.rs/rustc-"$rustc_version"-*/afl.rs-*/afl/bin | tail -1)
    # Inputs AFL++ found that are bigger than this stay out of the corpus
    # (the repository stays small; the seeds cover big, real files).
    max_bytes=${FUZZ_CMIN_MAX_BYTES:-4096}
    for t in "${targets[@]}"; do
        queue="$OUT/$t/default/queue"
        [[ -d $queue ]] || { echo "fuzz: no queue for $t: run scripts/fuzz.sh $t first" >&2; exit 1; }
        tmp=$(mktemp -d)
        cp host/fuzz/corpus/"$t"/* "$tmp"/
        find "$queue" -maxdepth 1 -name 'id:*' -size -"$((max_bytes + 1))"c -exec cp {} "$tmp"/ \;
        rm -rf "$OUT/$t.cmin"
        AFL_PATH="$afl_bin" PATH="$afl_bin:$PATH" "$afl_bin/afl-cmin.bash" -e -i "$tmp" \
            -o "$OUT/$t.cmin" -t "$TIMEOUT_MS" -m "$MEM_MB" -- "$BIN/$t" >"$OUT/$t.cmin.log" 2>&1 || {
            tail -5 "$OUT/$t.cmin.log" >&2
            exit 1
        }
        rm -rf "$tmp"
        # Seeds keep their names; what AFL++ found is named by content.
        for f in "$OUT/$t.cmin"/*; do
            name=$(basename "$f")
            [[ $name == seed-* ]] || name="afl-$(sha1sum "$f" | cut -c1-12)"
            [[ -e host/fuzz/corpus/$t/$name ]] || cp "$f" "host/fuzz/corpus/$t/$name"
        done
        echo "fuzz: $t corpus: $(ls host/fuzz/corpus/"$t" | wc -l) files," \
            "$(cat host/fuzz/corpus/"$t"/* | wc -c) bytes"
    done
    exit 0
fi

mkdir -p "$OUT"
printf '%-10s %12s %10s %8s %6s %8s %10s\n' target executions exec/s corpus crashes hangs stability > "$OUT/summary.txt"
status=0
for t in "${targets[@]}"; do
    rm -rf "${OUT:?}/$t"
    echo "fuzz: $t for ${SECONDS_EACH}s (log: $OUT/$t.log)"
    # -V: stop after the time; -c -: no CMPLOG binary (that needs nightly
    # plugins; cargo-afl's own -c0 is overridden by this later flag).
    cargo afl fuzz -c - -V "$SECONDS_EACH" -t "$TIMEOUT_MS" -m "$MEM_MB" \
        -i "host/fuzz/corpus/$t" -o "$OUT/$t" -- "$BIN/$t" >"$OUT/$t.log" 2>&1 || {
        echo "fuzz: afl-fuzz failed for $t; the end of its log:" >&2
        tail -20 "$OUT/$t.log" >&2
        exit 1
    }
    stats="$OUT/$t/default/fuzzer_stats"
    field() { sed -n "s/^$1 *: *//p" "$stats"; }
    crashes=$(field saved_crashes)
    hangs=$(field saved_hangs)
    printf '%-10s %12s %10s %8s %6s %8s %10s\n' "$t" "$(field execs_done)" "$(field execs_per_sec)" \
        "$(field corpus_count)" "$crashes" "$hangs" "$(field stability)" >> "$OUT/summary.txt"
    for kind in crashes hangs; do
        for f in "$OUT/$t/default/$kind"/id:*; do
            [[ -e $f ]] || continue
            mkdir -p "host/fuzz/crashes/$t"
            prefix=$([[ $kind == hangs ]] && echo hang- || echo crash-)
            cp "$f" "host/fuzz/crashes/$t/$prefix$(sha1sum "$f" | cut -c1-12)"
        done
    done
    if [[ $crashes != 0 || $hangs != 0 ]]; then
        status=1
    fi
done
echo
cat "$OUT/summary.txt"
awk 'NR > 1 { n += $2 } END { printf "total executions: %d\n", n }' "$OUT/summary.txt"
if [[ $status != 0 ]]; then
    echo "fuzz: crashes or hangs were copied to host/fuzz/crashes/; replay one with" \
        "cargo run -p schedlab-fuzz --bin TARGET -- FILE"
fi
exit $status
