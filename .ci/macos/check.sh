#!/usr/bin/env bash
# Type-check tern for macOS from Linux: there is no Apple SDK here, so nothing links, but
# cargo-zigbuild gives a C compiler for Apple targets, so every crate's C and assembly
# (blake3, ...) compiles and clippy checks all of tern's code, tests included, for each target.
# Usage: .ci/macos/check.sh VENV_DIR [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${1:?usage: check.sh VENV_DIR [TARGET...]}"
shift
targets=("${@:-aarch64-apple-darwin}")

if [[ ! -x "$venv/bin/cargo-zigbuild" ]]; then
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian keeps venv's pip bootstrap in its own package.
        rm -rf "$venv"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install -q ziglang cargo-zigbuild
fi
rustup target add "${targets[@]}" >/dev/null 2>&1
for target in "${targets[@]}"; do
    echo "-- clippy for $target"
    PATH="$venv/bin:$PATH" cargo-zigbuild clippy --all-targets --locked --target "$target" -- -D warnings
done
