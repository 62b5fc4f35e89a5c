#!/usr/bin/env bash
# tern against reference tools, on 127.0.0.1: one table of medians and ratios.
#
#   bash benches/compare.sh                  the full run (several minutes on 2 cores)
#   QUICK=1 bash benches/compare.sh          a smoke run: tiny sizes, 1 repeat (~15 s)
#
# Cases (tern and its reference alternate A B A B ..., REPEATS times):
#   1. bulk: one random file of BULK_MB to disk; reference socat, the practical limit (a plain
#      single-threaded copy with BLAKE3 on both ends, benches/plain_copy.rs), and, when they
#      can be set up here, scp to a throwaway local sshd and magic-wormhole through a local
#      mailbox + relay; and, to tell a noisy host from a slow tool, dd writing the same file
#      with no network, and the share of CPU the hypervisor stole (the tools' order is
#      shuffled every round, and every run starts right after an untimed write of the same
#      size: see prime_page_cache)
#   1b. two peers: two senders of the bulk file into one `tern recv` at once; reference two
#      socat pairs
#   2. many small files: SMALL_FILES x 4 KiB in nested folders; reference tar | socat (and
#      the peak RSS of both tern ends)
#   3. chat while streaming a CHAT_MB file: one-way latency of a line every 10 ms, lines lost;
#      reference: the same lines over a connection of their own beside a socat stream (the
#      floor this host sets, with nothing shared)
#   3b. the same into a disk that cannot keep up: the receiver's folder on a loop device whose
#      writes the block throttle holds to SLOW_MBPS, so its writes stall (root, a loop device
#      and cgroup v1's blkio throttle; said in the table when missing); and again with a second
#      peer streaming a file of the same size into the same receiver. Reference: the floor on
#      the same slow disk
#   4. memory: peak RSS of sender and receiver per size in MEM_SIZES_MB, largest vs smallest
#   5. TUI idle CPU: `tern listen` in a pseudo-terminal, CPU used over TUI_SECONDS
#
# Knobs (environment): BULK_MB (1024), SMALL_FILES (10000), CHAT_MB (4096),
#   MEM_SIZES_MB ("256 4096"), REPEATS (3), TUI_SECONDS (10), QUICK=1 (16 MiB, 500 files,
#   MEM_SIZES_MB="16 64", 1 repeat, TUI_SECONDS=3; explicit knobs still win),
#   SLOW_MBPS (100: the slow disk's write rate, MB/s),
#   OPTIONAL_REFS (1; 0 skips scp and magic-wormhole), BENCH_DIR (/tmp: where the temporary
#   data folder goes), KEEP_BENCH_DIR=1 (keep it, with the logs), TERN_BIN (use this binary
#   instead of running `cargo build --release`), BULK_SEED (1: the bulk rounds' shuffled
#   orders), HOLD_PAGES (1; 0 leaves the VM's free page reporting as it is: see hold_pages).
#
# Needs root for the installs it makes when something is missing (apt-get). Exit status: 0,
# or 1 when tern itself failed (a build, a transfer, a mismatched file, a lost chat line, a UI
# that did not quit); 2 when the harness could not run. Slow numbers never fail it.

set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd -P)
# The command line, with the knobs that came from the environment, to paste and rerun.
INVOCATION=""
for knob in QUICK BULK_MB SMALL_FILES CHAT_MB MEM_SIZES_MB REPEATS TUI_SECONDS OPTIONAL_REFS \
    BENCH_DIR KEEP_BENCH_DIR TERN_BIN BULK_SEED HOLD_PAGES SLOW_MBPS; do
    if [[ -n ${!knob+set} ]]; then
        if [[ ${!knob} =~ ^[A-Za-z0-9_./:=+-]*$ ]]; then
            INVOCATION+="$knob=${!knob} "
        else
            INVOCATION+="$knob='${!knob//\'/\'\\\'\'}' "
        fi
    fi
done
INVOCATION+="bash $(printf '%q ' "$0" "$@")"
INVOCATION="${INVOCATION% } (in $(pwd))"

# ---------------------------------------------------------------------------------- knobs

if [[ ${QUICK:-0} == 1 ]]; then
    BULK_MB=${BULK_MB:-16}
    SMALL_FILES=${SMALL_FILES:-500}
    CHAT_MB=${CHAT_MB:-16}
    MEM_SIZES_MB=${MEM_SIZES_MB:-"16 64"}
    REPEATS=${REPEATS:-1}
    TUI_SECONDS=${TUI_SECONDS:-3}
else
    BULK_MB=${BULK_MB:-1024}
    SMALL_FILES=${SMALL_FILES:-10000}
    CHAT_MB=${CHAT_MB:-4096}
    MEM_SIZES_MB=${MEM_SIZES_MB:-"256 4096"}
    REPEATS=${REPEATS:-3}
    TUI_SECONDS=${TUI_SECONDS:-10}
fi
QUICK=${QUICK:-0}
BULK_SEED=${BULK_SEED:-1}
HOLD_PAGES=${HOLD_PAGES:-1}
SLOW_MBPS=${SLOW_MBPS:-100}
OPTIONAL_REFS=${OPTIONAL_REFS:-1}
FILES_PER_DIR=100
SMALL_SIZE=4096
BUF=131072

die() {
    printf 'compare.sh: %s\n' "$*" >&2
    exit 2
}
note() { printf '[bench] %s\n' "$*" >&2; }

is_count() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
[[ $HOLD_PAGES == [01] ]] || die "HOLD_PAGES must be 0 or 1, not '$HOLD_PAGES'"
for knob in BULK_MB SMALL_FILES CHAT_MB REPEATS TUI_SECONDS BULK_SEED SLOW_MBPS; do
    is_count "${!knob}" || die "$knob must be a positive integer, not '${!knob}'"
done
read -r -a MEM_SIZES <<<"$MEM_SIZES_MB"
((${#MEM_SIZES[@]} > 0)) || die "MEM_SIZES_MB is empty"
for mb in "${MEM_SIZES[@]}"; do
    is_count "$mb" || die "MEM_SIZES_MB: '$mb' is not a positive integer"
done
mapfile -t MEM_SIZES < <(printf '%s\n' "${MEM_SIZES[@]}" | sort -n -u)

KNOBS="QUICK=$QUICK BULK_MB=$BULK_MB SMALL_FILES=$SMALL_FILES CHAT_MB=$CHAT_MB"
KNOBS+=" MEM_SIZES_MB=\"${MEM_SIZES[*]}\" REPEATS=$REPEATS TUI_SECONDS=$TUI_SECONDS"
KNOBS+=" OPTIONAL_REFS=$OPTIONAL_REFS BULK_SEED=$BULK_SEED HOLD_PAGES=$HOLD_PAGES"
KNOBS+=" SLOW_MBPS=$SLOW_MBPS"

# ---------------------------------------------------------------- work folder and cleanup

BASE=${BENCH_DIR:-/tmp}
mkdir -p "$BASE"
W=$(mktemp -d "$BASE/tern-bench.XXXXXX")
PIDS=$W/pids     # every child group leader we start; the trap ends whatever is left
PORTS=$W/ports   # ports handed out, so that no two runs share one
SAMPLES=$W/samples.tsv
ROWS=$W/rows.tsv
LOGS=$W/logs
mkdir -p "$W/bin" "$W/data" "$W/out" "$LOGS" "$W/tern-logs"
: >"$PIDS"
: >"$PORTS"
: >"$SAMPLES"
: >"$ROWS"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -s $PIDS ]]; then
        local pid sig
        for sig in TERM KILL; do
            while read -r pid; do
                [[ $pid =~ ^[0-9]+$ ]] || continue
                kill "-$sig" -- "-$pid" 2>/dev/null
                kill "-$sig" "$pid" 2>/dev/null
            done <"$PIDS"
            [[ $sig == TERM ]] && sleep 0.3
        done
    fi
    release_pages
    slow_disk_down
    if [[ ${KEEP_BENCH_DIR:-0} == 1 ]]; then
        note "kept $W"
    else
        rm -rf -- "$W"
    fi
    exit "$rc"
}
# A VM with free page reporting hands memory that sat free back to its host, and a writer that
# touches it next faults it in afresh: here the same dd of 1 GiB to the page cache took 0.3 s
# right after another write and 4.4 s after a 5 s pause, whatever tool it was. This kernel
# reports only pages free for min_free_ms (0 here), so the run raises that to a minute, as long
# as any timed run, and puts it back at the end. Every tool gets the same memory; the table
# says whether it was held (HOLD_PAGES=0, or no root, leaves the host as it is).
PAGE_HOLD=/sys/module/page_reporting/parameters/min_free_ms
PAGE_HOLD_WAS=""
HOST_PAGES="free page reporting: not on this host"
hold_pages() {
    [[ -e $PAGE_HOLD ]] || return 0
    local was
    was=$(cat "$PAGE_HOLD" 2>/dev/null) || was=""
    if [[ $HOLD_PAGES != 1 ]]; then
        HOST_PAGES="free page reporting left as it is (min_free_ms $was, HOLD_PAGES=0)"
    elif [[ $was =~ ^[0-9]+$ ]] && echo 60000 2>/dev/null >"$PAGE_HOLD"; then
        PAGE_HOLD_WAS=$was
        HOST_PAGES="free page reporting held off during the run (min_free_ms $was -> 60000, restored after)"
    else
        HOST_PAGES="free page reporting left as it is (min_free_ms ${was:-unreadable}: cannot change it here)"
    fi
}
release_pages() {
    if [[ -n $PAGE_HOLD_WAS ]]; then
        echo "$PAGE_HOLD_WAS" >"$PAGE_HOLD" 2>/dev/null || note "could not restore $PAGE_HOLD to $PAGE_HOLD_WAS"
        PAGE_HOLD_WAS=""
    fi
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export TERN_LOG_DIR=$W/tern-logs    # tern's own log file goes there, not to ~/.local/state
export TERN_CONFIG_DIR=$W/tern-config # its identity and known peers: this run's own
export PYTHONDONTWRITEBYTECODE=1    # no __pycache__ in benches/

# ----------------------------------------------------------------------------- installs

APT_UPDATED=0
apt_install() {
    if ((APT_UPDATED == 0)); then
        note "apt-get update"
        if ! apt-get update -qq >"$LOGS/apt-update.log" 2>&1; then
            note "apt-get update failed: $(tail -n 2 "$LOGS/apt-update.log" | tr '\n' ' ')"
            return 1
        fi
        APT_UPDATED=1
    fi
    note "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$LOGS/apt-install.log" 2>&1
}
apt_error() { tail -n 3 "$LOGS/apt-install.log" 2>/dev/null | tr '\n' ' '; }

missing=()
command -v socat >/dev/null || missing+=(socat)
[[ -x /usr/bin/time ]] || missing+=(time)
command -v pv >/dev/null || missing+=(pv)
command -v python3 >/dev/null || missing+=(python3)
command -v cmp >/dev/null || missing+=(diffutils)
command -v tar >/dev/null || missing+=(tar)
command -v pkill >/dev/null || missing+=(procps)
if ((${#missing[@]})); then
    ((EUID == 0)) || die "missing ${missing[*]} and not root: install them first"
    apt_install "${missing[@]}" || die "apt-get install ${missing[*]} failed: $(apt_error)"
fi
PY=$(command -v python3)

# -------------------------------------------------------------------------------- build

TERN=$W/bin/tern
if [[ -n ${TERN_BIN:-} ]]; then
    [[ -x $TERN_BIN ]] || die "TERN_BIN=$TERN_BIN is not an executable"
    cp -- "$TERN_BIN" "$TERN"
    TERN_SOURCE="$TERN_BIN (TERN_BIN)"
else
    if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH=$HOME/.cargo/bin:$PATH
    fi
    command -v cargo >/dev/null || die "cargo not found"
    note "cargo build --release (in $REPO)"
    if ! (cd "$REPO" && cargo build --release); then
        printf 'compare.sh: tern failed: cargo build --release failed\n' >&2
        exit 1
    fi
    # A copy: the tree may be rebuilt by someone else while we measure.
    cp -- "$REPO/target/release/tern" "$TERN"
    TERN_SOURCE="$REPO/target/release/tern"
fi
# The practical limit for the bulk case: the plainest hashing copy (benches/plain_copy.rs).
PLAIN=$W/plain_copy
PLAIN_SKIP=""
if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
    PATH=$HOME/.cargo/bin:$PATH
fi
if ! command -v cargo >/dev/null; then
    PLAIN_SKIP="cargo not found to build benches/plain_copy.rs"
elif (cd "$REPO" && cargo build --release --example plain_copy >"$W/plain_copy.build" 2>&1); then
    cp -- "$REPO/target/release/examples/plain_copy" "$PLAIN"
else
    PLAIN_SKIP="cargo build --release --example plain_copy failed (see $W/plain_copy.build)"
fi
TERN_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    TERN_REV+=" + uncommitted changes in src/"
fi

# ---------------------------------------------------------------------- disk space check

need_mb=0
declare -A SIZE_SEEN=()
for mb in "$BULK_MB" "$CHAT_MB" "${MEM_SIZES[@]}"; do
    if [[ -z ${SIZE_SEEN[$mb]:-} ]]; then
        SIZE_SEEN[$mb]=1
        need_mb=$((need_mb + mb))
    fi
done
largest=$BULK_MB
for mb in "$CHAT_MB" "${MEM_SIZES[@]}"; do
    if ((mb > largest)); then largest=$mb; fi
done
# sources + one received copy of the largest + small files twice (with folder overhead) + slack
need_mb=$((need_mb + largest + SMALL_FILES * 3 * SMALL_SIZE / 1048576 + 256))
avail_mb=$(($(df -Pk "$W" | awk 'NR == 2 { print $4 }') / 1024))
((avail_mb >= need_mb)) || die "needs about $need_mb MiB free in $BASE, has $avail_mb MiB (set BENCH_DIR or smaller knobs)"

# ------------------------------------------------------------------------------ helpers

TERN_FAILURES=0
declare -a FAILURE_LIST=()

tern_fail() { # WHAT LOGPREFIX
    TERN_FAILURES=$((TERN_FAILURES + 1))
    FAILURE_LIST+=("$1")
    note "TERN FAILED: $1"
    local f
    for f in "$2".*; do
        [[ -f $f && -s $f ]] || continue
        printf '  --- %s (last lines)\n' "${f##*/}" >&2
        tail -n 5 -- "$f" | sed 's/^/  | /' >&2
    done
}

sample() { printf '%s\t%s\n' "$1" "$2" >>"$SAMPLES"; }

row() { # fields...
    local IFS=$'\t'
    printf '%s\n' "$*" >>"$ROWS"
}

free_port() { "$PY" "$SCRIPT_DIR/benchutil.py" free-port "$PORTS"; }

fresh_dir() {
    rm -rf -- "$1"
    mkdir -p -- "$1"
}

# Flush earlier runs' writes so they do not land inside the next timed run.
# Before every timed run: dirty pages written out, and the input read once, so each tool starts
# from the same warm page cache. (This machine pages out idle page cache on its own; without
# the read, whichever tool runs first after the input was made reads it from disk.)
quiesce() {
    sync
    if (($# > 0)); then
        find "$@" -type f -exec cat -- {} + >/dev/null
    fi
}

shuffle() { # ARRAY_NAME: Fisher-Yates in place, from bash's RANDOM
    local -n a=$1
    local i j t
    for ((i = ${#a[@]} - 1; i > 0; i--)); do
        j=$((RANDOM % (i + 1)))
        t=${a[i]}
        a[i]=${a[j]}
        a[j]=$t
    done
}

# Write and delete BYTES of zeros in DIR, untimed, right before a timed bulk run. On a VM that
# hands freed memory back to its host (free page reporting), pages that sat free for a few
# seconds are faulted in afresh by the next writer, and that made the same dd of 1 GiB take
# 0.4 s right after another write and 2.7-4.3 s after a pause. Without this, whichever tool ran
# after a slow one (magic-wormhole, scp) paid for the pause; with it, every run starts from
# freshly used free memory, as on a machine that keeps its memory. Dirty pages of a deleted
# file are dropped, not written back, so this leaves no writeback behind.
prime_page_cache() { # DIR BYTES
    dd if=/dev/zero of="$1/.prime" bs=1M count=$((($2 + 1048575) / 1048576)) status=none
    rm -f -- "$1/.prime"
}

# The CPU counters of /proc/stat's first line (busy, steal), to tell a noisy host from a slow
# tool: a vCPU the hypervisor takes away stalls whichever pipeline stage was on it.
cpu_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $9; exit }' /proc/stat 2>/dev/null ||
        echo "0 0"
}
steal_percent() { # "BUSY STEAL" "BUSY STEAL": stolen share of busy time between them
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        busy = y[1] - x[1]
        if (busy > 0) printf "%.1f", 100 * (y[2] - x[2]) / busy; else print "nan"
    }'
}

rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.3f", n / t; else print "nan" }'; }
mbps() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%.3f", n / t / 1e6; else print "nan" }'; }

# pyrun SCRIPT ARGS...: run a Python helper in the background and wait for it, so that a
# signal reaches our trap at once (bash defers traps while a foreground child runs); its
# stdout ends up in PYOUT. Returns the helper's exit status.
pyrun() {
    local pid rc=0
    "$PY" "$SCRIPT_DIR/$1" "${@:2}" >"$W/pyout" &
    pid=$!
    echo "$pid" >>"$PIDS"
    wait "$pid" || rc=$?
    PYOUT=$(<"$W/pyout")
    return "$rc"
}

# run_pair LOGPREFIX READY TIMEOUT FIRST... :: SECOND...   (see runpair.py)
# Sets RP_ELAPSED RP_RC1 RP_RC2 RP_STATUS; returns 0 only if both exited 0 in time.
run_pair() {
    local log=$1 ready=$2 timeout=$3 rc=0
    shift 3
    pyrun runpair.py --ready "$ready" --timeout "$timeout" --log "$log" --pidfile "$PIDS" \
        -- "$@" || rc=$?
    read -r RP_ELAPSED RP_RC1 RP_RC2 RP_STATUS <<<"${PYOUT:-0 999 999 harness-error}"
    return "$rc"
}
run_single() { # LOGPREFIX TIMEOUT CMD...
    local log=$1 timeout=$2 rc=0
    shift 2
    pyrun runpair.py --single --timeout "$timeout" --log "$log" --pidfile "$PIDS" \
        -- "$@" || rc=$?
    read -r RP_ELAPSED RP_RC1 RP_RC2 RP_STATUS <<<"${PYOUT:-0 999 999 harness-error}"
    return "$rc"
}

kv() { awk -v k="$1" 'index($0, k "=") == 1 { print substr($0, length(k) + 2); exit }' <<<"$2"; }

# Exactly one regular file in DIR, identical to SRC.
same_single_file() { # SRC DIR NAME
    local n
    n=$(find "$2" -type f | wc -l)
    [[ $n -eq 1 && -f $2/$3 ]] && cmp -s -- "$1" "$2/$3"
}
why_not_same() { # SRC DIR NAME
    if [[ ! -f $2/$3 ]]; then
        echo "no $3 in $2: $(find "$2" -type f | head -n 3 | tr '\n' ' ')"
    elif [[ $(find "$2" -type f | wc -l) -ne 1 ]]; then
        echo "extra files in $2: $(find "$2" -type f | head -n 3 | tr '\n' ' ')"
    else
        echo "content differs: $(cmp -- "$1" "$2/$3" 2>&1 | head -n 1)"
    fi
}

datafile() { # MB -> prints the path of a random file of MB MiB, made once
    local f=$W/data/rand_$1M.bin
    if [[ ! -f $f ]]; then
        note "generating $1 MiB of random data"
        head -c "$(($1 * 1048576))" /dev/urandom >"$f.tmp" &
        local pid=$!
        echo "$pid" >>"$PIDS"
        wait "$pid" || die "could not write $f.tmp"
        mv -- "$f.tmp" "$f"
    fi
    printf '%s\n' "$f"
}

timeout_for_mb() { echo $((120 + $1 * 2)); } # generous: only there to end a hang

# ------------------------------------------------------------------ optional references

SSH_PORT="" SSH_KEY="" SSH_SKIP="" SSHD_PID=""
setup_sshd() {
    if [[ ! -x /usr/sbin/sshd ]] || ! command -v scp >/dev/null || ! command -v ssh-keygen >/dev/null; then
        if ((EUID != 0)); then
            SSH_SKIP="openssh-server is not installed and we are not root"
            return 1
        fi
        if ! apt_install openssh-server openssh-client; then
            SSH_SKIP="apt-get install openssh-server failed: $(apt_error)"
            return 1
        fi
    fi
    local d=$W/ssh user
    user=$(id -un)
    mkdir -p "$d"
    chmod 700 "$d"
    if ! ssh-keygen -q -t ed25519 -N '' -f "$d/host_key" >/dev/null 2>"$LOGS/ssh-keygen.log" ||
        ! ssh-keygen -q -t ed25519 -N '' -f "$d/client_key" >/dev/null 2>>"$LOGS/ssh-keygen.log"; then
        SSH_SKIP="ssh-keygen failed: $(tail -n 1 "$LOGS/ssh-keygen.log")"
        return 1
    fi
    cp -- "$d/client_key.pub" "$d/authorized_keys"
    chmod 600 "$d/authorized_keys"
    SSH_PORT=$(free_port)
    cat >"$d/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
EOF
    mkdir -p /run/sshd 2>/dev/null || true # privilege-separation folder sshd insists on
    if ! /usr/sbin/sshd -t -f "$d/sshd_config" >"$LOGS/sshd.log" 2>&1; then
        SSH_SKIP="sshd -t rejected the config: $(tail -n 2 "$LOGS/sshd.log" | tr '\n' ' ')"
        return 1
    fi
    setsid /usr/sbin/sshd -D -e -f "$d/sshd_config" >>"$LOGS/sshd.log" 2>&1 </dev/null &
    SSHD_PID=$!
    echo "$SSHD_PID" >>"$PIDS"
    if ! "$PY" "$SCRIPT_DIR/benchutil.py" wait-listen "$SSH_PORT" 30 "$SSHD_PID"; then
        SSH_SKIP="sshd did not start listening on 127.0.0.1:$SSH_PORT: $(tail -n 2 "$LOGS/sshd.log" | tr '\n' ' ')"
        return 1
    fi
    SSH_KEY=$d/client_key
    SSH_OPTS=(-F /dev/null -i "$SSH_KEY" -o BatchMode=yes -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
    SSH_USER=$user
    if ! ssh "${SSH_OPTS[@]}" -p "$SSH_PORT" "$user@127.0.0.1" true >"$LOGS/ssh-login.log" 2>&1; then
        SSH_SKIP="key login as $user to the local sshd failed: $(tail -n 2 "$LOGS/ssh-login.log" | tr '\n' ' ') $(tail -n 2 "$LOGS/sshd.log" | tr '\n' ' ')"
        return 1
    fi
    return 0
}

WH_SKIP="" WH_RELAY="" WH_TRANSIT="" WH_PIDS=()
setup_wormhole() {
    local twist plugins=""
    twist=$(command -v twist3 || command -v twist || true)
    if [[ -n $twist ]]; then plugins=$("$twist" --help 2>&1 || true); fi
    if ! command -v wormhole >/dev/null || [[ -z $twist ]] ||
        ! grep -q wormhole-mailbox <<<"$plugins" || ! grep -q transitrelay <<<"$plugins"; then
        if ((EUID != 0)); then
            WH_SKIP="magic-wormhole and its servers are not installed and we are not root"
            return 1
        fi
        if ! apt_install magic-wormhole python3-magic-wormhole-mailbox-server magic-wormhole-transit-relay; then
            WH_SKIP="apt-get install magic-wormhole python3-magic-wormhole-mailbox-server magic-wormhole-transit-relay failed: $(apt_error)"
            return 1
        fi
        twist=$(command -v twist3 || command -v twist || true)
    fi
    if [[ -z $twist ]]; then
        WH_SKIP="no twist/twist3 command (python3-twisted) after installing"
        return 1
    fi
    plugins=$("$twist" --help 2>&1 || true)
    if ! grep -q wormhole-mailbox <<<"$plugins" || ! grep -q transitrelay <<<"$plugins"; then
        WH_SKIP="$twist lists no wormhole-mailbox/transitrelay plugin"
        return 1
    fi
    # Debian ships both servers as twisted plugins only (no entry points of their own): they
    # run as `twist3 wormhole-mailbox` and `twist3 transitrelay`. Free ports rather than the
    # usual 4000/4001, so that nothing already there gets in the way.
    local d=$W/wormhole mport tport
    mkdir -p "$d"
    mport=$(free_port)
    tport=$(free_port)
    (cd "$d" && exec setsid "$twist" wormhole-mailbox "--port=tcp:$mport:interface=127.0.0.1" \
        "--channel-db=$d/relay.sqlite" >"$LOGS/wormhole-mailbox.log" 2>&1 </dev/null) &
    WH_PIDS+=($!)
    echo "$!" >>"$PIDS"
    (cd "$d" && exec setsid "$twist" transitrelay "--port=tcp:$tport:interface=127.0.0.1" \
        >"$LOGS/wormhole-transit.log" 2>&1 </dev/null) &
    WH_PIDS+=($!)
    echo "$!" >>"$PIDS"
    if ! "$PY" "$SCRIPT_DIR/benchutil.py" wait-listen "$mport" 60 "${WH_PIDS[0]}"; then
        WH_SKIP="the mailbox server did not listen on 127.0.0.1:$mport: $(tail -n 2 "$LOGS/wormhole-mailbox.log" | tr '\n' ' ')"
        return 1
    fi
    if ! "$PY" "$SCRIPT_DIR/benchutil.py" wait-listen "$tport" 60 "${WH_PIDS[1]}"; then
        WH_SKIP="the transit relay did not listen on 127.0.0.1:$tport: $(tail -n 2 "$LOGS/wormhole-transit.log" | tr '\n' ' ')"
        return 1
    fi
    WH_RELAY=ws://127.0.0.1:$mport/v1
    WH_TRANSIT=tcp:127.0.0.1:$tport
    return 0
}

stop_pid() { # PID...: end server groups we started
    local pid
    for pid in "$@"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        wait "$pid" 2>/dev/null || true
    done
}

# ------------------------------------------------------------------------------- cases

TERN_READY='stderr:^tern: listening on'

# A reference's bulk run that just ended with status RC: its rate, or why it failed. Uses
# bench_bulk's src, name, bytes and r.
record_bulk() { # RC KEY LABEL OUT LOGPREFIX
    local rc=$1 key=$2 label=$3 out=$4 log=$5
    if ((rc == 0)) && same_single_file "$src" "$out" "$name"; then
        sample "bulk.$key" "$(mbps "$bytes" "$RP_ELAPSED")"
        note "bulk $r/$REPEATS $label: $(mbps "$bytes" "$RP_ELAPSED") MB/s"
    else
        sample "bulk.$key" FAIL
        note "$label run $r failed ($RP_STATUS): $(why_not_same "$src" "$out" "$name") $(tail -n 2 "$log.second.err" 2>/dev/null | tr '\n' ' ')"
    fi
}

# One bulk run of WHO (tern or a reference) in round r, into a fresh folder that is removed
# afterwards; uses bench_bulk's src, bytes, name, timeout and r.
bulk_one() { # WHO
    local who=$1 out=$W/out/bulk-$1 log=$LOGS/bulk-$1-$r port rc=0
    fresh_dir "$out"
    port=$(free_port)
    quiesce "$src"
    prime_page_cache "$out" "$bytes"
    case $who in
    tern | tern-insecure)
        # tern encrypts by default; --insecure shows what the encryption costs.
        local wire=()
        if [[ $who == tern-insecure ]]; then wire=(--insecure); fi
        if run_pair "$log" "$TERN_READY" "$timeout" \
            "$TERN" recv "${wire[@]}" --once --yes --bind 127.0.0.1 --port "$port" --download-dir "$out" :: \
            "$TERN" send "${wire[@]}" "127.0.0.1:$port" "$src"; then
            if same_single_file "$src" "$out" "$name"; then
                sample "bulk.$who" "$(mbps "$bytes" "$RP_ELAPSED")"
                note "bulk $r/$REPEATS $who: $(mbps "$bytes" "$RP_ELAPSED") MB/s"
            else
                sample "bulk.$who" FAIL
                tern_fail "bulk run $r ($who): received file wrong: $(why_not_same "$src" "$out" "$name")" "$log"
            fi
        else
            sample "bulk.$who" FAIL
            tern_fail "bulk run $r ($who): $RP_STATUS (recv rc $RP_RC1, send rc $RP_RC2)" "$log"
        fi
        ;;
    socat)
        run_pair "$log" "port:$port" "$timeout" \
            socat -u -b "$BUF" "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "CREATE:$out/$name" :: \
            socat -u -b "$BUF" "OPEN:$src" "TCP:127.0.0.1:$port" || rc=$?
        record_bulk "$rc" socat socat "$out" "$log"
        ;;
    plain)
        run_pair "$log" "stderr:^listening" "$timeout" \
            "$PLAIN" recv "$port" "$out/$name" :: "$PLAIN" send "$src" "127.0.0.1:$port" || rc=$?
        record_bulk "$rc" plain "plain copy" "$out" "$log"
        ;;
    dd)
        # The host's own page-cache write rate, no network and no second process: on a VM
        # that hands freed memory back to its host, every page written may be faulted in
        # afresh, and this row shows how much of a receiver's time that costs in this run.
        run_single "$log" "$timeout" dd if="$src" of="$out/$name" bs=1M status=none || rc=$?
        record_bulk "$rc" dd "dd to a file" "$out" "$log"
        ;;
    scp)
        run_single "$log" "$timeout" \
            scp -q "${SSH_OPTS[@]}" -P "$SSH_PORT" "$src" "$SSH_USER@127.0.0.1:$out/$name" ||
            rc=$?
        record_bulk "$rc" scp scp "$out" "$log"
        ;;
    wormhole)
        # Forced through the local transit relay (--no-listen on both sides), so that every
        # byte stays on 127.0.0.1.
        local code=$((r + 6))-bench-code
        run_pair "$log" "stderr:Wormhole code is" "$timeout" \
            wormhole --relay-url "$WH_RELAY" --transit-helper "$WH_TRANSIT" \
            send --no-listen --hide-progress --code "$code" "$src" :: \
            wormhole --relay-url "$WH_RELAY" --transit-helper "$WH_TRANSIT" \
            receive --no-listen --hide-progress --accept-file -o "$out/$name" "$code" || rc=$?
        record_bulk "$rc" wormhole magic-wormhole "$out" "$log"
        ;;
    esac
    rm -rf -- "$out"
}

bench_bulk() {
    local src bytes name timeout r
    src=$(datafile "$BULK_MB")
    bytes=$(stat -c %s "$src")
    name=${src##*/}
    timeout=$(timeout_for_mb "$BULK_MB")
    local have_scp=0 have_wh=0
    if [[ $OPTIONAL_REFS == 1 ]]; then
        if setup_sshd; then have_scp=1; else note "scp row skipped: $SSH_SKIP"; fi
        if setup_wormhole; then have_wh=1; else note "magic-wormhole row skipped: $WH_SKIP"; fi
    else
        SSH_SKIP="OPTIONAL_REFS=0"
        WH_SKIP="OPTIONAL_REFS=0"
    fi
    # Every tool that runs here, each round in its own shuffled order (seeded: a rerun uses the
    # same orders), so that no tool always comes first, or always after the same neighbour.
    local order=(tern tern-insecure socat)
    if [[ -z $PLAIN_SKIP ]]; then order+=(plain); fi
    order+=(dd)
    if ((have_scp)); then order+=(scp); fi
    if ((have_wh)); then order+=(wormhole); fi
    local steal_before k
    steal_before=$(cpu_ticks)
    RANDOM=$BULK_SEED
    for ((r = 1; r <= REPEATS; r++)); do
        shuffle order
        note "bulk round $r/$REPEATS order: ${order[*]}"
        for k in "${order[@]}"; do
            bulk_one "$k"
        done
    done
    if [[ -n $SSHD_PID ]]; then stop_pid "$SSHD_PID"; fi
    if ((${#WH_PIDS[@]})); then stop_pid "${WH_PIDS[@]}"; fi

    sample bulk.steal "$(steal_percent "$steal_before" "$(cpu_ticks)")"

    local label="bulk $BULK_MB MiB (MB/s)"
    row cmp "$label" bulk.tern bulk.socat "socat (tern encrypted, as by default)"
    row cmp "$label, tern --insecure" bulk.tern-insecure bulk.socat socat
    row cmp "$label, encrypted" bulk.tern bulk.tern-insecure "tern --insecure: the cost of encryption"
    if [[ -z $PLAIN_SKIP ]]; then
        row cmp "$label" bulk.tern bulk.plain "plain Rust copy, BLAKE3 both ends: the limit"
    else
        row skip "$label vs a plain hashing copy" "$PLAIN_SKIP"
    fi
    if ((have_scp)); then
        row cmp "$label" bulk.tern bulk.scp "scp, local sshd"
    else
        row skip "$label vs scp" "$SSH_SKIP"
    fi
    if ((have_wh)); then
        row cmp "$label" bulk.tern bulk.wormhole "magic-wormhole, local relay"
    else
        row skip "$label vs magic-wormhole" "$WH_SKIP"
    fi
    row cmp "$label" bulk.tern bulk.dd "dd to a file, no network: this host's page-cache write"
    row val "host: CPU stolen by the hypervisor in the bulk case (% of busy)" bulk.steal median \
        "high = a noisy host; the ratios above move with it"
}

# Two peers send the bulk file at once to one receiver: tern's `recv` serves both sessions
# side by side; the reference is two socat pairs on two ports. Both senders start together;
# the clock runs until both have finished. Rate: both files' bytes over that time.
two_one() { # WHO; uses bench_two's src, bytes, name, timeout and r
    local who=$1 out=$W/out/two-$1 log=$LOGS/two-$1-$r port port2 rc=0 got
    fresh_dir "$out"
    port=$(free_port)
    quiesce "$src"
    prime_page_cache "$out" $((2 * bytes))
    case $who in
    tern)
        # The receiver serves until told to end (SIGTERM, once both senders are done): with
        # --once it could end before a slow-starting second sender connects.
        run_pair "$log" "$TERN_READY" "$timeout" \
            "$TERN" recv --yes --bind 127.0.0.1 --port "$port" --download-dir "$out" :: \
            bash -c 'a() { "$1" send "127.0.0.1:$2" "$3"; }; a "$@" & x=$!; a "$@" & y=$!;
                     wait $x; rx=$?; wait $y; ry=$?
                     pkill -TERM -f -- "^$1 recv --yes --bind 127.0.0.1 --port $2 "
                     exit $((rx | ry))' two "$TERN" "$port" "$src" ||
            rc=$?
        ;;
    socat)
        port2=$(free_port)
        run_pair "$log" "port:$port" "$timeout" \
            bash -c 'socat -u -b "$1" "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr" "CREATE:$4/a" &
                     x=$!; socat -u -b "$1" "TCP-LISTEN:$3,bind=127.0.0.1,reuseaddr" "CREATE:$4/b" &
                     y=$!; wait $x; rx=$?; wait $y; ry=$?; exit $((rx | ry))' two \
            "$BUF" "$port" "$port2" "$out" :: \
            bash -c 'socat -u -b "$1" "OPEN:$2" "TCP:127.0.0.1:$3,retry=500,interval=0.01" &
                     x=$!; socat -u -b "$1" "OPEN:$2" "TCP:127.0.0.1:$4,retry=500,interval=0.01" &
                     y=$!; wait $x; rx=$?; wait $y; ry=$?; exit $((rx | ry))' two \
            "$BUF" "$src" "$port" "$port2" || rc=$?
        ;;
    esac
    got=$(find "$out" -type f -size "${bytes}c" | wc -l)
    if ((rc == 0)) && ((got == 2)); then
        sample "two.$who" "$(mbps $((2 * bytes)) "$RP_ELAPSED")"
        note "two peers $r/$REPEATS $who: $(mbps $((2 * bytes)) "$RP_ELAPSED") MB/s"
    elif [[ $who == tern ]]; then
        sample two.tern FAIL
        tern_fail "two peers run $r: $RP_STATUS (recv rc $RP_RC1, senders rc $RP_RC2), $got of 2 files whole" "$log"
    else
        sample "two.$who" FAIL
        note "two peers $who run $r failed ($RP_STATUS), $got of 2 files whole"
    fi
    rm -rf -- "$out"
}

bench_two() {
    local src bytes name timeout r k
    src=$(datafile "$BULK_MB")
    bytes=$(stat -c %s "$src")
    name=${src##*/}
    timeout=$(timeout_for_mb $((2 * BULK_MB)))
    local order=(tern socat)
    RANDOM=$BULK_SEED
    for ((r = 1; r <= REPEATS; r++)); do
        shuffle order
        for k in "${order[@]}"; do
            two_one "$k"
        done
    done
    row cmp "two peers at once, 2 × $BULK_MB MiB into one receiver (MB/s)" two.tern two.socat \
        "two socat pairs"
}

bench_small() {
    local root=$W/data/smalltree r port out timeout=$((120 + SMALL_FILES / 10)) check
    if [[ ! -d $root/small ]]; then
        note "generating $SMALL_FILES files of $SMALL_SIZE bytes"
        "$PY" "$SCRIPT_DIR/benchutil.py" gen-tree "$root/small" "$SMALL_FILES" "$SMALL_SIZE" "$FILES_PER_DIR"
    fi
    for ((r = 1; r <= REPEATS; r++)); do
        # A: tern sends the folder; it arrives as OUT/small/...
        out=$W/out/small-tern
        fresh_dir "$out"
        port=$(free_port)
        quiesce "$root/small"
        rm -f -- "$W/rss.recv" "$W/rss.send"
        if run_pair "$LOGS/small-tern-$r" "$TERN_READY" "$timeout" \
            /usr/bin/time -f %M -o "$W/rss.recv" \
            "$TERN" recv --once --yes --bind 127.0.0.1 --port "$port" --download-dir "$out" :: \
            /usr/bin/time -f %M -o "$W/rss.send" "$TERN" send "127.0.0.1:$port" "$root/small"; then
            if check=$("$PY" "$SCRIPT_DIR/benchutil.py" verify-tree "$root" "$out" 2>&1); then
                sample small.tern "$(rate "$SMALL_FILES" "$RP_ELAPSED")"
                sample small.rss.send "$(tail -n 1 "$W/rss.send")"
                sample small.rss.recv "$(tail -n 1 "$W/rss.recv")"
                note "small files $r/$REPEATS tern: $(rate "$SMALL_FILES" "$RP_ELAPSED") files/s"
            else
                sample small.tern FAIL
                tern_fail "small files run $r: $check" "$LOGS/small-tern-$r"
            fi
        else
            sample small.tern FAIL
            tern_fail "small files run $r: $RP_STATUS (recv rc $RP_RC1, send rc $RP_RC2)" "$LOGS/small-tern-$r"
        fi
        rm -rf -- "$out"

        # B: tar | socat
        check=""
        out=$W/out/small-tar
        fresh_dir "$out"
        port=$(free_port)
        quiesce "$root/small"
        # shellcheck disable=SC2016 # $1.. expand in the inner shell
        if run_pair "$LOGS/small-tar-$r" "port:$port" "$timeout" \
            bash -c 'set -o pipefail; socat -u -b "$1" "TCP-LISTEN:$2,bind=127.0.0.1,reuseaddr" - | tar x -C "$3"' \
            recv "$BUF" "$port" "$out" :: \
            bash -c 'set -o pipefail; tar c -C "$1" . | socat -u -b "$2" - "TCP:127.0.0.1:$3"' \
            send "$root" "$BUF" "$port" &&
            check=$("$PY" "$SCRIPT_DIR/benchutil.py" verify-tree "$root" "$out" 2>&1); then
            sample small.tar "$(rate "$SMALL_FILES" "$RP_ELAPSED")"
            note "small files $r/$REPEATS tar|socat: $(rate "$SMALL_FILES" "$RP_ELAPSED") files/s"
        else
            sample small.tar FAIL
            note "tar|socat run $r failed ($RP_STATUS) ${check:-}"
        fi
        rm -rf -- "$out"
    done
    row cmp "small files $SMALL_FILES x 4 KiB (files/s)" small.tern small.tar "tar | socat"
    row val "peak RSS, $SMALL_FILES small files: sender (KiB)" small.rss.send median ""
    row val "peak RSS, $SMALL_FILES small files: receiver (KiB)" small.rss.recv median ""
}

bench_chat() {
    local src name r port out res rc timeout status
    src=$(datafile "$CHAT_MB")
    name=${src##*/}
    timeout=$(timeout_for_mb "$CHAT_MB")
    for ((r = 1; r <= REPEATS; r++)); do
        out=$W/out/chat
        fresh_dir "$out"
        port=$(free_port)
        quiesce "$src"
        rc=0
        pyrun chat_latency.py --tern "$TERN" --port "$port" --download-dir "$out" --file "$src" \
            --interval-ms 10 --timeout "$timeout" --log "$LOGS/chat-$r" --pidfile "$PIDS" || rc=$?
        res=$PYOUT
        status=$(kv status "$res")
        if ((rc == 0)) && ! same_single_file "$src" "$out" "$name"; then
            rc=1
            status="file wrong: $(why_not_same "$src" "$out" "$name")"
        fi
        if ((rc == 0)); then
            sample chat.p50 "$(kv p50_ms "$res")"
            sample chat.p99 "$(kv p99_ms "$res")"
            sample chat.max "$(kv max_ms "$res")"
            sample chat.mbps "$(kv mbps "$res")"
            note "chat $r/$REPEATS: $(kv received "$res")/$(kv sent "$res") lines, p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, max $(kv max_ms "$res") ms (line $(kv max_seq "$res")), file at $(kv mbps "$res") MB/s"
        else
            sample chat.p50 FAIL
            sample chat.p99 FAIL
            sample chat.max FAIL
            sample chat.mbps FAIL
            tern_fail "chat run $r: ${status:-harness error} (sent $(kv sent "$res"), received $(kv received "$res"), recv rc $(kv recv_rc "$res"), send rc $(kv send_rc "$res"))" "$LOGS/chat-$r"
        fi
        if [[ -n $(kv sent "$res") ]]; then sample chat.sent "$(kv sent "$res")"; fi
        if [[ -n $(kv received "$res") ]]; then sample chat.received "$(kv received "$res")"; fi
        if [[ -n $(kv lost "$res") ]]; then sample chat.lost "$(kv lost "$res")"; fi
        rm -rf -- "$out"

        # B: the floor: the same lines over a connection of their own, beside a socat stream
        fresh_dir "$out"
        quiesce "$src"
        rc=0
        pyrun chat_floor.py --bulk-port "$(free_port)" --chat-port "$(free_port)" \
            --out "$out/$name" --file "$src" --interval-ms 10 --timeout "$timeout" \
            --log "$LOGS/floor-$r" --pidfile "$PIDS" || rc=$?
        res=$PYOUT
        if ((rc == 0)); then
            sample floor.p50 "$(kv p50_ms "$res")"
            sample floor.p99 "$(kv p99_ms "$res")"
            sample floor.max "$(kv max_ms "$res")"
            note "chat floor $r/$REPEATS: p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, max $(kv max_ms "$res") ms (line $(kv max_seq "$res")), file at $(kv mbps "$res") MB/s"
        else
            sample floor.p50 FAIL
            sample floor.p99 FAIL
            sample floor.max FAIL
            note "chat floor run $r failed ($(kv status "$res"))"
        fi
        rm -rf -- "$out"
    done
    local label="chat while streaming $CHAT_MB MiB"
    local floor="floor: own socat connection beside a socat stream"
    row cmp "$label: latency p50 (ms)" chat.p50 floor.p50 "$floor"
    row cmp "$label: latency p99 (ms)" chat.p99 floor.p99 "$floor"
    row cmp "$label: latency max (ms)" chat.max floor.max "$floor, worst of all runs" max
    row val "$label: lines sent" chat.sent sum "all runs"
    row val "$label: lines received" chat.received sum "all runs"
    row val "$label: lines lost (must be 0)" chat.lost sum "all runs"
    row val "$label: file rate (MB/s)" chat.mbps median "recv's receiving -> received"
}

bench_mem() {
    local mb src name r port out timeout smallest largest
    for mb in "${MEM_SIZES[@]}"; do
        src=$(datafile "$mb")
        name=${src##*/}
        timeout=$(timeout_for_mb "$mb")
        for ((r = 1; r <= REPEATS; r++)); do
            out=$W/out/mem
            fresh_dir "$out"
            port=$(free_port)
            quiesce
            rm -f -- "$W/rss.recv" "$W/rss.send"
            if run_pair "$LOGS/mem-$mb-$r" "$TERN_READY" "$timeout" \
                /usr/bin/time -f %M -o "$W/rss.recv" \
                "$TERN" recv --once --yes --bind 127.0.0.1 --port "$port" --download-dir "$out" :: \
                /usr/bin/time -f %M -o "$W/rss.send" "$TERN" send "127.0.0.1:$port" "$src" &&
                same_single_file "$src" "$out" "$name"; then
                sample "mem.send.$mb" "$(tail -n 1 "$W/rss.send")"
                sample "mem.recv.$mb" "$(tail -n 1 "$W/rss.recv")"
                note "memory $mb MiB $r/$REPEATS: send $(tail -n 1 "$W/rss.send") KiB, recv $(tail -n 1 "$W/rss.recv") KiB"
            else
                sample "mem.send.$mb" FAIL
                sample "mem.recv.$mb" FAIL
                tern_fail "memory run $mb MiB $r: $RP_STATUS (recv rc $RP_RC1, send rc $RP_RC2) $(why_not_same "$src" "$out" "$name")" "$LOGS/mem-$mb-$r"
            fi
            rm -rf -- "$out"
        done
    done
    for mb in "${MEM_SIZES[@]}"; do
        row val "peak RSS, $mb MiB file: sender (KiB)" "mem.send.$mb" median ""
        row val "peak RSS, $mb MiB file: receiver (KiB)" "mem.recv.$mb" median ""
    done
    smallest=${MEM_SIZES[0]}
    largest=${MEM_SIZES[-1]}
    if ((largest != smallest)); then
        row cmp "peak RSS sender, $largest vs $smallest MiB (KiB; ratio ~1 = flat)" \
            "mem.send.$largest" "mem.send.$smallest" "$smallest MiB file"
        row cmp "peak RSS receiver, $largest vs $smallest MiB (KiB; ratio ~1 = flat)" \
            "mem.recv.$largest" "mem.recv.$smallest" "$smallest MiB file"
    fi
}

bench_tui() {
    local port res rc=0
    port=$(free_port)
    mkdir -p "$W/out/tui"
    pyrun tui_idle.py --tern "$TERN" --port "$port" --seconds "$TUI_SECONDS" --settle 1 \
        --download-dir "$W/out/tui" --log "$LOGS/tui.tty" --pidfile "$PIDS" || rc=$?
    res=$PYOUT
    if [[ -n $(kv cpu_ms "$res") ]]; then
        sample tui.cpu "$(kv cpu_ms "$res")"
        sample tui.bytes "$(kv tty_bytes "$res")"
        note "TUI idle: $(kv cpu_ms "$res") ms CPU in $(kv window_s "$res") s, $(kv tty_bytes "$res") bytes drawn"
    else
        sample tui.cpu FAIL
    fi
    if ((rc != 0)); then
        tern_fail "TUI: $(kv status "$res") (exit after Ctrl-C: $(kv exit "$res"))" "$LOGS/tui"
    fi
    row val "TUI idle CPU over $TUI_SECONDS s (ms; ~0 expected)" tui.cpu median "tern listen in a 120x40 pty"
    row val "TUI idle terminal output over $TUI_SECONDS s (bytes)" tui.bytes median ""
}

# A disk that cannot keep up: ext4 on a loop device whose writes cgroup v1's blkio throttle
# holds to SLOW_MBPS, with at most 64 MiB of its pages dirty (strict), so a writer past that
# waits for the throttled writeback, as it would for a slow USB stick or a network share.
SLOW_DIR="" SLOW_SKIP="" SLOW_LOOP="" SLOW_DEV=""
SLOW_THROTTLE=/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device
slow_disk_up() {
    if ((EUID != 0)); then
        SLOW_SKIP="needs root (a loop device and the block throttle)"
        return 1
    fi
    if [[ ! -w $SLOW_THROTTLE ]]; then
        SLOW_SKIP="no cgroup v1 blkio throttle on this host ($SLOW_THROTTLE)"
        return 1
    fi
    local tool
    for tool in losetup mkfs.ext4 mount lsblk; do
        if ! command -v "$tool" >/dev/null; then
            SLOW_SKIP="$tool is not installed"
            return 1
        fi
    done
    local img=$W/slow.img
    truncate -s "$((3 * CHAT_MB + 1024))M" "$img"
    if ! SLOW_LOOP=$(losetup -f --show "$img" 2>&1); then
        SLOW_SKIP="no loop device: $SLOW_LOOP"
        SLOW_LOOP=""
        return 1
    fi
    SLOW_DEV=$(lsblk -no MAJ:MIN "$SLOW_LOOP" | tr -d ' ')
    mkdir -p "$W/slow"
    if ! mkfs.ext4 -q -F "$SLOW_LOOP" || ! mount "$SLOW_LOOP" "$W/slow"; then
        SLOW_SKIP="could not make or mount a file system on $SLOW_LOOP"
        return 1
    fi
    echo "$SLOW_DEV $((SLOW_MBPS * 1000000))" >"$SLOW_THROTTLE"
    if [[ -w /sys/class/bdi/$SLOW_DEV/max_bytes ]]; then
        echo 1 >"/sys/class/bdi/$SLOW_DEV/strict_limit"
        echo $((64 << 20)) >"/sys/class/bdi/$SLOW_DEV/max_bytes"
    fi
    SLOW_DIR=$W/slow
}
slow_disk_down() {
    if [[ -n $SLOW_DEV ]]; then
        echo "$SLOW_DEV 0" >"$SLOW_THROTTLE" 2>/dev/null
    fi
    if [[ -n $SLOW_DIR ]]; then
        umount "$SLOW_DIR" 2>/dev/null || umount -l "$SLOW_DIR" 2>/dev/null
    fi
    if [[ -n $SLOW_LOOP ]]; then
        losetup -d "$SLOW_LOOP" 2>/dev/null
    fi
    SLOW_DEV="" SLOW_DIR="" SLOW_LOOP=""
}

# One chat run into the slow disk: KEY (chat.slow or chat.slow2), and an extra file for a
# second peer, or none.
slow_chat_one() {
    local key=$1 src=$2 extra=$3 r=$4 out port rc res status extra_args=()
    out=$SLOW_DIR/in
    fresh_dir "$out"
    port=$(free_port)
    quiesce "$src" ${extra:+"$extra"}
    [[ -n $extra ]] && extra_args=(--extra-file "$extra")
    rc=0
    pyrun chat_latency.py --tern "$TERN" --port "$port" --download-dir "$out" --file "$src" \
        "${extra_args[@]}" --interval-ms 10 --timeout "$(timeout_for_mb $((2 * CHAT_MB * 1000 / SLOW_MBPS)))" \
        --log "$LOGS/$key-$r" --pidfile "$PIDS" || rc=$?
    res=$PYOUT
    status=$(kv status "$res")
    if ((rc == 0)) && ! cmp -s -- "$src" "$out/${src##*/}"; then
        rc=1
        status="file wrong: ${src##*/} differs or is missing"
    fi
    if ((rc == 0)) && [[ -n $extra ]] && ! cmp -s -- "$extra" "$out/${extra##*/}"; then
        rc=1
        status="file wrong: ${extra##*/} differs or is missing"
    fi
    if ((rc == 0)); then
        sample "$key.p99" "$(kv p99_ms "$res")"
        sample "$key.max" "$(kv max_ms "$res")"
        sample "$key.mbps" "$(kv mbps "$res")"
        note "$key $r/$REPEATS: $(kv received "$res")/$(kv sent "$res") lines, p50 $(kv p50_ms "$res") ms, p99 $(kv p99_ms "$res") ms, max $(kv max_ms "$res") ms, file at $(kv mbps "$res") MB/s"
    else
        sample "$key.p99" FAIL
        sample "$key.max" FAIL
        sample "$key.mbps" FAIL
        tern_fail "$key run $r: ${status:-harness error} (sent $(kv sent "$res"), received $(kv received "$res"))" "$LOGS/$key-$r"
    fi
    if [[ -n $(kv lost "$res") ]]; then sample "$key.lost" "$(kv lost "$res")"; fi
    rm -rf -- "$out"
}

bench_slow() {
    local label="chat while streaming $CHAT_MB MiB into a disk held to $SLOW_MBPS MB/s"
    if ! slow_disk_up; then
        note "the slow-disk case cannot run here: $SLOW_SKIP"
        row skip "$label" "$SLOW_SKIP"
        slow_disk_down
        return 0
    fi
    local src extra r out res rc
    src=$(datafile "$CHAT_MB")
    extra=$W/data/second_${CHAT_MB}M.bin
    [[ -f $extra ]] || cp -- "$src" "$extra"
    for ((r = 1; r <= REPEATS; r++)); do
        slow_chat_one chat.slow "$src" "" "$r"
        slow_chat_one chat.slow2 "$src" "$extra" "$r"
        # The floor on the same disk: its own chat connection beside a socat stream.
        out=$SLOW_DIR/in
        fresh_dir "$out"
        quiesce "$src"
        rc=0
        pyrun chat_floor.py --bulk-port "$(free_port)" --chat-port "$(free_port)" \
            --out "$out/${src##*/}" --file "$src" --interval-ms 10 \
            --timeout "$(timeout_for_mb $((2 * CHAT_MB * 1000 / SLOW_MBPS)))" \
            --log "$LOGS/slowfloor-$r" --pidfile "$PIDS" || rc=$?
        res=$PYOUT
        if ((rc == 0)); then
            sample slowfloor.p99 "$(kv p99_ms "$res")"
            sample slowfloor.max "$(kv max_ms "$res")"
            note "slow-disk floor $r/$REPEATS: p99 $(kv p99_ms "$res") ms, max $(kv max_ms "$res") ms, file at $(kv mbps "$res") MB/s"
        else
            sample slowfloor.p99 FAIL
            sample slowfloor.max FAIL
            note "slow-disk floor run $r failed ($(kv status "$res"))"
        fi
        rm -rf -- "$out"
    done
    slow_disk_down
    local floor="floor on the same disk: own socat connection beside a socat stream"
    row cmp "$label: latency p99 (ms)" chat.slow.p99 slowfloor.p99 "$floor"
    row cmp "$label: latency max (ms)" chat.slow.max slowfloor.max "$floor, worst of all runs" max
    row cmp "$label, a second peer streaming too: latency p99 (ms)" chat.slow2.p99 slowfloor.p99 "$floor (one stream)"
    row cmp "$label, a second peer streaming too: latency max (ms)" chat.slow2.max slowfloor.max "$floor (one stream), worst of all runs" max
    row val "$label: lines lost (must be 0)" chat.slow.lost sum "all runs, one peer"
    row val "$label, two peers: lines lost (must be 0)" chat.slow2.lost sum "all runs"
}

# ---------------------------------------------------------------------------------- run

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
note "work folder $W; $KNOBS"
hold_pages
note "$HOST_PAGES"
bench_bulk
bench_two
bench_small
bench_chat
bench_slow
bench_mem
bench_tui
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
release_pages

echo
echo "tern benchmark: medians of $REPEATS run(s) each, tern and reference alternating; 1 MB = 10^6 B"
echo "command:  $INVOCATION"
echo "knobs:    $KNOBS"
echo "tern:     $TERN_SOURCE at $TERN_REV"
echo "machine:  $(nproc) cores, load average $LOAD_BEFORE before, $LOAD_AFTER after; $(($(date +%s) - START)) s"
echo "memory:   $HOST_PAGES"
echo
"$PY" "$SCRIPT_DIR/report.py" "$SAMPLES" "$ROWS"
echo
if ((TERN_FAILURES > 0)); then
    echo "TERN FAILED ($TERN_FAILURES):"
    printf '  %s\n' "${FAILURE_LIST[@]}"
    exit 1
fi
echo "tern: every transfer verified, no chat line lost"
