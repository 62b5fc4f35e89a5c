#!/usr/bin/env bash
# Tern builds against each other (and tar | socat) on many small files, interleaved:
#
#   bash benches/ab_small.sh ROUNDS DIR BIN...
#
# Each round sends the folder DIR once with every BIN, in an order shuffled per round, into a
# fresh folder next to DIR (so on the same file system: put DIR on tmpfs, e.g. /dev/shm, to
# see the tools' own cost rather than the disk's). A BIN named `tar` is the reference of
# benches/compare.sh (`tar c | socat -u -b 131072` into `socat | tar x`). Prints the elapsed
# time and the CPU time of both ends (user + system, /usr/bin/time) of every run, then their
# medians per BIN, and checks that every run delivered as many files as DIR holds.
set -euo pipefail

(($# >= 3)) || { sed -n '2,11p' "$0" >&2; exit 2; }
rounds=$1 dir=${2%/}
shift 2
[[ -d $dir ]] || { echo "ab_small: $dir is not a folder" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "ab_small: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
for bin in "$@"; do
    if [[ $bin == tar ]]; then
        command -v socat >/dev/null || { echo "ab_small: socat is not installed" >&2; exit 2; }
    else
        [[ -x $bin ]] || { echo "ab_small: $bin is not an executable" >&2; exit 2; }
    fi
done
work=$(mktemp -d "$(dirname -- "$dir")/ab_small.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
files=$(find "$dir" -type f | wc -l)

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# One run of BIN into a fresh $work/in; sets ms and cpu_ms.
run() { # BIN
    local bin=$1 port recv start end got
    rm -rf -- "$work/in" "$work/recv.err" && mkdir "$work/in"
    port=$((20000 + RANDOM % 20000))
    if [[ $bin == tar ]]; then
        # shellcheck disable=SC2016 # $1.. expand in the inner shell
        /usr/bin/time -f '%U %S' -o "$work/recv.cpu" bash -c 'set -o pipefail
            socat -u -b 131072 "TCP-LISTEN:$1,bind=127.0.0.1,reuseaddr" - | tar x -C "$2"' \
            recv "$port" "$work/in" 2>"$work/recv.err" &
        recv=$!
        until grep -q ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp; do
            kill -0 "$recv" 2>/dev/null || { cat "$work/recv.err" >&2; exit 1; }
            sleep 0.005
        done
        start=$(date +%s%N)
        # shellcheck disable=SC2016
        /usr/bin/time -f '%U %S' -o "$work/send.cpu" bash -c 'set -o pipefail
            tar c -C "$1" "$2" | socat -u -b 131072 - "TCP:127.0.0.1:$3"' \
            send "$(dirname -- "$dir")" "$(basename -- "$dir")" "$port"
    else
        /usr/bin/time -f '%U %S' -o "$work/recv.cpu" "$bin" recv --once --yes --port "$port" \
            --bind 127.0.0.1 --download-dir "$work/in" >/dev/null 2>"$work/recv.err" &
        recv=$!
        until grep -q listening "$work/recv.err" 2>/dev/null; do
            kill -0 "$recv" 2>/dev/null || { cat "$work/recv.err" >&2; exit 1; }
            sleep 0.005
        done
        start=$(date +%s%N)
        /usr/bin/time -f '%U %S' -o "$work/send.cpu" "$bin" send --retries 0 \
            "127.0.0.1:$port" "$dir" </dev/null >/dev/null 2>&1
    fi
    wait "$recv"
    end=$(date +%s%N)
    got=$(find "$work/in" -type f | wc -l)
    ((got == files)) || { echo "ab_small: $bin delivered $got of $files files" >&2; exit 1; }
    ms=$(((end - start) / 1000000))
    cpu_ms=$(cat "$work/recv.cpu" "$work/send.cpu" | awk '{s += $1 + $2} END {printf "%d", s * 1000}')
}

declare -A elapsed cpu
for ((i = 1; i <= rounds; i++)); do
    order=("$@")
    for ((k = ${#order[@]} - 1; k > 0; k--)); do
        j=$((RANDOM % (k + 1)))
        t=${order[k]} order[k]=${order[j]} order[j]=$t
    done
    for bin in "${order[@]}"; do
        run "$bin"
        elapsed[$bin]+="$ms " cpu[$bin]+="$cpu_ms "
        echo "round $i $bin: $ms ms, CPU $cpu_ms ms"
    done
done
for bin in "$@"; do
    echo "$bin: elapsed median $(median <<<"${elapsed[$bin]}") ms (${elapsed[$bin]% }), CPU median $(median <<<"${cpu[$bin]}") ms (${cpu[$bin]% })"
done
