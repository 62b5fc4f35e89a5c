#!/usr/bin/env bash
# Tern builds against each other (and socat) on the bulk case, interleaved:
#
#   bash benches/ab_bulk.sh ROUNDS FILE BIN...
#
# Each round sends FILE once with every BIN, in an order shuffled per round (`BIN recv` into a
# fresh folder next to FILE, so on the same disk; `BIN send` from 127.0.0.1). A BIN named
# `socat` is the bulk reference of benches/compare.sh (`socat -u -b 131072`). Every run starts
# after an untimed write and delete of FILE's size, as in compare.sh (prime_page_cache).
# Prints the elapsed time and the CPU time of both ends (user + system, /usr/bin/time) of every
# run, then their medians per BIN, and the first BIN's speed relative to each other one, round
# by round (median and quartiles). For judging an engine change: on a noisy machine only
# interleaved rounds compare.
set -euo pipefail

(($# >= 3)) || { sed -n '2,13p' "$0" >&2; exit 2; }
rounds=$1 file=$2
shift 2
[[ -x /usr/bin/time ]] || { echo "ab_bulk: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
for bin in "$@"; do
    if [[ $bin == socat ]]; then
        command -v socat >/dev/null || { echo "ab_bulk: socat is not installed" >&2; exit 2; }
    else
        [[ -x $bin ]] || { echo "ab_bulk: $bin is not an executable" >&2; exit 2; }
    fi
done
work=$(mktemp -d "$(dirname -- "$file")/ab_bulk.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
size=$(stat -c %s -- "$file")

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# One run of BIN into a fresh $work/in; sets ms and cpu_ms.
run() { # BIN
    local bin=$1 port recv start end
    rm -rf -- "$work/in" && mkdir "$work/in" && sync
    cat -- "$file" >/dev/null # the sender reads from the page cache in every run alike
    dd if=/dev/zero of="$work/in/.prime" bs=1M count=$(((size + 1048575) / 1048576)) status=none
    rm -f -- "$work/in/.prime" "$work/recv.err"
    port=$((20000 + RANDOM % 20000))
    if [[ $bin == socat ]]; then
        /usr/bin/time -f '%U %S' -o "$work/recv.cpu" socat -u -b 131072 \
            "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "CREATE:$work/in/file" 2>"$work/recv.err" &
        recv=$!
        until grep -q ":$(printf '%04X' "$port") 00000000:0000 0A" /proc/net/tcp; do
            kill -0 "$recv" 2>/dev/null || { cat "$work/recv.err" >&2; exit 1; }
            sleep 0.005
        done
        start=$(date +%s%N)
        /usr/bin/time -f '%U %S' -o "$work/send.cpu" socat -u -b 131072 \
            "OPEN:$file" "TCP:127.0.0.1:$port"
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
            "127.0.0.1:$port" "$file" </dev/null >/dev/null 2>&1
    fi
    wait "$recv"
    end=$(date +%s%N)
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
# Rounds pair up the runs that were close in time, so their ratios shed some of the drift a
# noisy host adds to every run of a round alike.
first=$1
for bin in "${@:2}"; do
    python3 - "$first" "$bin" "${elapsed[$first]}" "${elapsed[$bin]}" <<'PY'
import statistics, sys
first, other, a, b = sys.argv[1:]
ratios = sorted(y / x for x, y in zip(map(int, a.split()), map(int, b.split())))
q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
print(f"{first} relative to {other}, per round ({other} ms / {first} ms): "
      f"median {statistics.median(ratios):.2f}, quartiles {q[0]:.2f}-{q[2]:.2f}")
PY
done
