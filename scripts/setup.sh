#!/usr/bin/env bash
# Installs what atoll's build and tests need, when it is missing; fast when everything is present.
#
#   - the Rust toolchain named in rust-toolchain.toml, with the targets x86_64-unknown-none,
#     wasm32-unknown-unknown and wasm32-wasip1 and the components rust-src, llvm-tools, clippy,
#     rustfmt (via rustup);
#   - qemu-system-x86_64, OVMF and script(1), and the C toolchain for the WASI programs of the
#     default image: clang, lld (wasm-ld), wasi-libc and libclang-rt-dev-wasm32 (via apt-get, as
#     root or through sudo).
#
# Exits non-zero with a message saying what to install by hand when something cannot be installed.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ATOLL_ROOT"

setup_rust() {
    command -v rustup >/dev/null 2>&1 ||
        die "rustup is not installed; install it from https://rustup.rs and run this again"
    local channel
    channel="$(sed -n 's/^channel *= *"\(.*\)".*/\1/p' rust-toolchain.toml)"
    [[ -n "$channel" ]] || die "rust-toolchain.toml names no channel"
    # RUSTUP_AUTO_INSTALL=0 may be set: install the pinned toolchain explicitly.
    if ! rustup toolchain list | grep -q "^${channel}[-\ ]"; then
        say "installing Rust toolchain $channel"
        rustup toolchain install "$channel" --profile minimal >&2 ||
            die "could not install Rust toolchain $channel (rustup toolchain install $channel)"
    fi
    local targets components want missing_targets=() missing_components=()
    targets="$(rustup target list --installed)"
    components="$(rustup component list --installed)"
    for want in x86_64-unknown-none wasm32-unknown-unknown wasm32-wasip1; do
        grep -qx "$want" <<<"$targets" || missing_targets+=("$want")
    done
    for want in rust-src llvm-tools clippy rustfmt; do
        grep -q "^${want}\(-\|$\)" <<<"$components" || missing_components+=("$want")
    done
    if ((${#missing_targets[@]})); then
        say "adding Rust targets: ${missing_targets[*]}"
        rustup target add "${missing_targets[@]}" >&2 ||
            die "could not add Rust targets ${missing_targets[*]} (rustup target add ...)"
    fi
    if ((${#missing_components[@]})); then
        say "adding Rust components: ${missing_components[*]}"
        rustup component add "${missing_components[@]}" >&2 ||
            die "could not add Rust components ${missing_components[*]} (rustup component add ...)"
    fi
}

# wasi-libc's sysroot and clang's wasm32 runtime library, as Debian installs them.
WASI_SYSROOT_LIBC=/usr/lib/wasm32-wasi/libc.a
wasi_rt_present() {
    compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null
}

# Host packages: QEMU, OVMF, script(1) (bsdutils) for the pseudo-terminal console test, and
# clang, lld, wasi-libc and libclang-rt-dev-wasm32 for the C programs of the default image.
setup_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
    [[ -f "$OVMF_CODE" && -f "$OVMF_VARS" ]] || missing+=(ovmf)
    command -v script >/dev/null 2>&1 || missing+=(bsdutils)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    compgen -G "/usr/bin/wasm-ld*" >/dev/null || missing+=(lld)
    [[ -f "$WASI_SYSROOT_LIBC" ]] || missing+=(wasi-libc)
    wasi_rt_present || missing+=(libclang-rt-dev-wasm32)
    ((${#missing[@]})) || return 0
    local hint="install ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})"
    local sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "missing ${missing[*]} and this is not root (no usable sudo): $hint"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and there is no apt-get: $hint"
    say "installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update >&2 || die "apt-get update failed: $hint"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
        die "apt-get install failed: $hint"
    command -v qemu-system-x86_64 >/dev/null 2>&1 || die "qemu-system-x86_64 is still missing: $hint"
    [[ -f "$OVMF_CODE" && -f "$OVMF_VARS" ]] ||
        die "OVMF is still missing ($OVMF_CODE, $OVMF_VARS): $hint (or set OVMF_CODE/OVMF_VARS)"
    command -v script >/dev/null 2>&1 || die "script(1) is still missing: $hint"
    command -v clang >/dev/null 2>&1 || die "clang is still missing: $hint"
    [[ -f "$WASI_SYSROOT_LIBC" ]] || die "wasi-libc is still missing ($WASI_SYSROOT_LIBC): $hint"
}

setup_rust
setup_packages
