#!/usr/bin/env bash
# Boots atoll in QEMU with the serial console on stdin/stdout.
#
# usage: ./run-qemu.sh [--bios|--uefi] [--smp N] [--mem SIZE] [--numa N] [--chunks IMAGE]
#                      [--icount] [--gdb] [--kvm] [-- QEMU-ARGS...]
#
#   --bios / --uefi   firmware (default: BIOS)
#   --smp N           number of cores (default: 2)
#   --mem SIZE        guest memory, QEMU syntax (default: 1G)
#   --numa N          N NUMA nodes (one socket each): cores and memory split evenly, refused
#                     when they do not split (cores a multiple of N, memory whole 2 MiB parts)
#   --chunks IMAGE    chunk image to boot with (default: target/chunks/default.img)
#   --icount          count guest instructions (-icount shift=0); boot figures are then repeatable
#   --gdb             wait for gdb on localhost:1234 before starting (prints the gdb command line)
#   --kvm             use KVM (-enable-kvm -cpu host); opt-in, for real hardware hosts
#   -- QEMU-ARGS      passed to QEMU unchanged
#
# Installs what is missing (scripts/setup.sh) and builds what changed (scripts/build.sh) first;
# ATOLL_NO_BUILD=1 skips both. With a terminal on stdin the console is raw (quit: Ctrl-A X); with a
# pipe each input line is sent once the kernel prints its prompt `atoll> ` (ATOLL_PROMPT_TIMEOUT=S
# bounds each wait; see tools/src/bin/atoll-console.rs). Exits with QEMU's status: 0 after
# `poweroff`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/lib.sh"

usage() {
    sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit "${1:-0}"
}

firmware=bios
chunks=""
console_args=()
while (($#)); do
    case "$1" in
    --bios) firmware=bios ;;
    --uefi) firmware=uefi ;;
    --smp | --mem | --numa)
        [[ $# -ge 2 ]] || die "$1 needs a value"
        console_args+=("$1" "$2")
        shift
        ;;
    --chunks)
        [[ $# -ge 2 ]] || die "--chunks needs a path"
        [[ -f "$2" ]] || die "chunk image $2 does not exist"
        chunks="$(realpath "$2")"
        shift
        ;;
    --icount | --gdb | --kvm) console_args+=("$1") ;;
    -h | --help) usage 0 ;;
    --)
        shift
        break
        ;;
    *)
        printf 'atoll: error: unknown option %s\n' "$1" >&2
        usage 2
        ;;
    esac
    shift
done
qemu_args=("$@")

cd "$ATOLL_ROOT"
if [[ "${ATOLL_NO_BUILD:-0}" != 1 ]]; then
    scripts/setup.sh
    build_args=(--firmware "$firmware" --console)
    [[ -n "$chunks" ]] && build_args+=(--chunks "$chunks")
    scripts/build.sh "${build_args[@]}"
fi
[[ -n "$chunks" ]] || chunks="$DEFAULT_CHUNKS"
image="$(disk_image "$chunks" "$firmware")"
[[ -f "$image" ]] || die "$image is missing: run scripts/build.sh --firmware $firmware"
[[ -x "$CONSOLE_BIN" ]] || die "$CONSOLE_BIN is missing: run scripts/build.sh --console"

exec "$CONSOLE_BIN" --image "$image" --firmware "$firmware" --kernel "$KERNEL_ELF" \
    "${console_args[@]}" -- "${qemu_args[@]}"
