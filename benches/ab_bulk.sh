#!/usr/bin/env bash
# Two or more tern builds against each other on the bulk case, interleaved A B A B ...:
#
#   bash benches/ab_bulk.sh ROUNDS FILE BIN...
#
# Each round sends FILE with every BIN in turn (`BIN recv` into a fresh folder next to FILE,
# so on the same disk; `BIN send` from 127.0.0.1). Prints, per binary, the elapsed time and the
# CPU time of both ends (user + system, /usr/bin/time) of every round, and their medians. For
# judging an engine change: on a noisy machine only interleaved rounds compare.
set -euo pipefail

(($# >= 3)) || { sed -n '2,9p' "$0" >&2; exit 2; }
rounds=$1 file=$2
shift 2
[[ -x /usr/bin/time ]] || { echo "ab_bulk: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
work=$(mktemp -d "$(dirname -- "$file")/ab_bulk.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
cat -- "$file" >/dev/null # the sender reads from the page cache in every round alike

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
declare -A elapsed cpu
for ((i = 1; i <= rounds; i++)); do
    for bin in "$@"; do
        rm -rf -- "$work/in" && mkdir "$work/in" && sync
        port=$((20000 + RANDOM % 20000))
        /usr/bin/time -f '%U %S' -o "$work/recv.cpu" "$bin" recv --once --yes --port "$port" \
            --bind 127.0.0.1 --download-dir "$work/in" >/dev/null 2>"$work/recv.err" &
        recv=$!
        until grep -q listening "$work/recv.err"; do
            kill -0 "$recv" 2>/dev/null || { cat "$work/recv.err" >&2; exit 1; }
            sleep 0.01
        done
        start=$(date +%s%N)
        /usr/bin/time -f '%U %S' -o "$work/send.cpu" "$bin" send --retries 0 \
            "127.0.0.1:$port" "$file" </dev/null >/dev/null 2>&1
        wait "$recv"
        end=$(date +%s%N)
        ms=$(((end - start) / 1000000))
        cpu_ms=$(cat "$work/recv.cpu" "$work/send.cpu" | awk '{s += $1 + $2} END {printf "%d", s * 1000}')
        elapsed[$bin]+="$ms " cpu[$bin]+="$cpu_ms "
        echo "round $i $bin: $ms ms, CPU $cpu_ms ms"
    done
done
for bin in "$@"; do
    echo "$bin: elapsed median $(median <<<"${elapsed[$bin]}") ms (${elapsed[$bin]% }), CPU median $(median <<<"${cpu[$bin]}") ms (${cpu[$bin]% })"
done
