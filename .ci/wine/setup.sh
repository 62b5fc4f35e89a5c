#!/usr/bin/env bash
# A wine prefix that runs tern's Windows build: wine and mingw from Debian, the Windows Rust
# target, and the ProcessPrng stand-in (see bcryptprimitives.c). Prints the prefix's path.
# Usage: .ci/wine/setup.sh PREFIX_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${1:?usage: setup.sh PREFIX_DIR}"

need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64)
command -v wine >/dev/null || need+=(wine)
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1

export WINEPREFIX="$prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [[ ! -f "$prefix/system.reg" ]]; then
    mkdir -p "$prefix"
    wineboot -i >/dev/null 2>&1
    wineserver -w
fi
dll="$prefix/drive_c/windows/system32/bcryptprimitives.dll"
if [[ ! -f "$dll" ]]; then
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$here/bcryptprimitives.c" \
        "$here/bcryptprimitives.def" -ladvapi32
fi
echo "$prefix"
