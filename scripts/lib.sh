# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are used by the scripts that source this
# Shared helpers for atoll's scripts. Source it; do not run it.
#
# Everything here writes its chatter to stderr: stdout belongs to the guest's console.

ATOLL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ATOLL_ROOT

# Where the build puts things (paths relative to the repository root).
KERNEL_ELF="target/x86_64-unknown-none/release/atoll-kernel"
IMAGE_TOOL_DIR="target/boot"
IMAGE_TOOL="$IMAGE_TOOL_DIR/release/atoll-image"
DEFAULT_CHUNKS="target/chunks/default.img"
IMAGES_DIR="target/images"
# The kernel as the disk images carry it: KERNEL_ELF without debug sections (scripts/build.sh).
BOOT_KERNEL_ELF="$IMAGES_DIR/atoll-kernel.boot.elf"
CONSOLE_BIN="target/release/atoll-console"
OVMF_CODE="${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}"
OVMF_VARS="${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}"

say() { printf '%s\n' "atoll: $*" >&2; }
die() {
    printf '%s\n' "atoll: error: $*" >&2
    exit 1
}

# is_newer TARGET SOURCE...: true when TARGET is missing or any SOURCE is newer than it.
is_stale() {
    local target="$1"
    shift
    [[ -e "$target" ]] || return 0
    local src
    for src in "$@"; do
        [[ "$src" -nt "$target" ]] && return 0
    done
    return 1
}

# image_name CHUNK_IMAGE: the disk images for a chunk image are named after its file stem
# (target/chunks/default.img -> default); the tools crate's QEMU harness uses the same rule.
image_name() {
    local base
    base="$(basename "$1")"
    printf '%s\n' "${base%.*}"
}

# disk_image CHUNK_IMAGE FIRMWARE: the path of the BIOS or UEFI disk image for a chunk image.
disk_image() {
    printf '%s/%s-%s.img\n' "$IMAGES_DIR" "$(image_name "$1")" "$2"
}
