#!/usr/bin/env bash
# Builds what changed for booting atoll: the kernel, the disk-image builder, the chunk image and
# the BIOS/UEFI disk images (target/images/<chunk-image stem>-{bios,uefi}.img).
#
# usage: scripts/build.sh [--firmware bios|uefi|all] [--chunks IMAGE] [--console]
#
#   --firmware   which disk images to build (default: all)
#   --chunks     the chunk image to attach as ramdisk (default: target/chunks/default.img, built
#                from chunks/default.toml by chunkc)
#   --console    also build the host console relay (target/release/atoll-console)
#
# All output goes to stderr.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ATOLL_ROOT"

firmware=all
chunks=""
console=0
while (($#)); do
    case "$1" in
    --firmware)
        firmware="${2:?--firmware needs bios, uefi or all}"
        shift 2
        ;;
    --chunks)
        chunks="${2:?--chunks needs a path}"
        shift 2
        ;;
    --console)
        console=1
        shift
        ;;
    -h | --help)
        sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 0
        ;;
    *) die "build.sh: unknown argument '$1'" ;;
    esac
done
case "$firmware" in
bios | uefi | all) ;;
*) die "--firmware must be bios, uefi or all, not '$firmware'" ;;
esac

build_kernel() {
    cargo build -p atoll-kernel --target x86_64-unknown-none --release >&2 ||
        die "kernel build failed"
}

# The disk images carry the kernel without its debug sections (about 12 of its 14 MB): the BIOS
# stage reads the whole ELF through int 13h, which under TCG took most of the 15-20 s to the first
# prompt. Code and symbols are unchanged, so host tools keep reading the full $KERNEL_ELF.
strip_kernel() {
    if [[ -s "$BOOT_KERNEL_ELF" ]] && ! is_stale "$BOOT_KERNEL_ELF" "$KERNEL_ELF"; then
        return 0
    fi
    local objcopy
    objcopy="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-objcopy"
    [[ -x "$objcopy" ]] || die "$objcopy is missing: run scripts/setup.sh (rustup component llvm-tools)"
    mkdir -p "$(dirname "$BOOT_KERNEL_ELF")"
    "$objcopy" --strip-debug "$KERNEL_ELF" "$BOOT_KERNEL_ELF" >&2 ||
        die "llvm-objcopy could not strip $KERNEL_ELF"
}

build_image_tool() {
    # The bootloader compiles its stages with -Zbuild-std: RUSTC_BOOTSTRAP=1 for this build only.
    # The first build takes about 5 minutes on 2 cores; cargo makes concurrent builds wait.
    # The target directory is given with --target-dir, never CARGO_TARGET_DIR: the bootloader's
    # build script runs a nested `cargo install` that would inherit CARGO_TARGET_DIR, lock the
    # outer build's target directory and wait for it forever.
    if [[ -x "$IMAGE_TOOL" ]] && ! is_stale "$IMAGE_TOOL" boot/Cargo.toml boot/Cargo.lock boot/src/*.rs; then
        return 0
    fi
    say "building the disk-image builder (first time: about 5 minutes)"
    RUSTC_BOOTSTRAP=1 cargo build --release --manifest-path boot/Cargo.toml \
        --target-dir "$IMAGE_TOOL_DIR" >&2 ||
        die "disk-image builder build failed"
}

build_default_chunks() {
    mkdir -p "$(dirname "$DEFAULT_CHUNKS")"
    [[ -f chunks/default.toml ]] || die "chunks/default.toml is missing: cannot build $DEFAULT_CHUNKS"
    local sources=(chunks/default.toml)
    mapfile -t -O 1 sources < <(find chunks tools/src/chunkc tools/src/bin/chunkc.rs chunk-image/src \
        -type f 2>/dev/null)
    if [[ -s "$DEFAULT_CHUNKS" ]] && ! is_stale "$DEFAULT_CHUNKS" "${sources[@]}"; then
        return 0
    fi
    say "building the default chunk image"
    cargo run -p tools --release --bin chunkc -- build chunks/default.toml -o "$DEFAULT_CHUNKS" >&2 ||
        die "chunkc failed to build chunks/default.toml"
}

build_disk_image() {
    local fw="$1" out
    out="$(disk_image "$chunks" "$fw")"
    local stamp="${out%.img}.ramdisk"
    local ramdisk_abs
    ramdisk_abs="$(realpath "$chunks")"
    if ! is_stale "$out" "$BOOT_KERNEL_ELF" "$chunks" "$IMAGE_TOOL" &&
        [[ "$(cat "$stamp" 2>/dev/null)" == "$ramdisk_abs" ]]; then
        return 0
    fi
    mkdir -p "$IMAGES_DIR"
    say "building $out"
    "$IMAGE_TOOL" --kernel "$BOOT_KERNEL_ELF" --ramdisk "$chunks" "--$fw" "$out" >&2 ||
        die "atoll-image failed to build $out"
    # Records which chunk image this disk image carries (two images may share a file stem).
    printf '%s\n' "$ramdisk_abs" >"$stamp"
}

build_console() {
    if cargo build -p tools --release --bin atoll-console >&2; then
        return 0
    fi
    [[ -x "$CONSOLE_BIN" ]] || die "building atoll-console failed"
    say "warning: building atoll-console failed; using the previous $CONSOLE_BIN"
}

build_kernel
strip_kernel
build_image_tool
if [[ -z "$chunks" ]]; then
    build_default_chunks
    chunks="$DEFAULT_CHUNKS"
fi
[[ -f "$chunks" ]] || die "chunk image $chunks does not exist"
if [[ "$firmware" == all ]]; then
    build_disk_image bios
    build_disk_image uefi
else
    build_disk_image "$firmware"
fi
if ((console)); then
    build_console
fi
