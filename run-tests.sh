#!/usr/bin/env bash
# shellcheck disable=SC2317 # stage functions are called through `stage`
# Runs every test of atoll: the one command for developers and CI.
#
# usage: ./run-tests.sh [--no-qemu]
#
# Stages: set-up (scripts/setup.sh installs toolchain parts, QEMU and OVMF when missing), rustfmt,
# clippy -D warnings (host crates, the kernel target, boot/), the build of kernel, disk images and
# console relay, host unit tests, and the QEMU tests (tools/tests/qemu_*.rs, release, 2 threads).
# Every stage runs even when an earlier one failed (unless it needs that one's output); the output
# ends with a line `tests: N passed, M failed` (summed over all cargo test runs). Exits non-zero if
# any stage failed. Logs of each stage are kept in target/test-logs/.
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/scripts/lib.sh"
cd "$ATOLL_ROOT" || exit 1

run_qemu=1
for arg in "$@"; do
    case "$arg" in
    --no-qemu) run_qemu=0 ;;
    -h | --help)
        sed -n '3,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$arg' (usage: ./run-tests.sh [--no-qemu])" ;;
    esac
done

# Crates that run in the kernel: linted for x86_64-unknown-none as well as for the host.
KERNEL_PACKAGES=(atoll-kernel atoll-kcore atoll-pae atoll-island atoll-wasi atoll-relocmodel atoll-snapshot)
LOG_DIR=target/test-logs
mkdir -p "$LOG_DIR"
tests_passed=0
tests_failed=0
summary=()
any_failed=0
started=$SECONDS

# stage NAME COMMAND...: runs one step, shows and logs its output, and records its result and
# any cargo test counts in it. Returns the step's status.
stage() {
    local name="$1" log="$LOG_DIR/$1.log" start=$SECONDS status
    shift
    printf '\n=== %s: %s\n' "$name" "$*"
    "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    local passed failed
    passed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" |
        awk '{s += $1} END {print s + 0}')
    failed=$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" |
        awk '{s += $1} END {print s + 0}')
    tests_passed=$((tests_passed + passed))
    tests_failed=$((tests_failed + failed))
    local counts=""
    if grep -q '^test result: ' "$log"; then
        counts=", $passed passed, $failed failed"
    fi
    if ((status == 0)); then
        summary+=("$(printf '  %-14s ok      (%ds%s)' "$name" $((SECONDS - start)) "$counts")")
    else
        any_failed=1
        summary+=("$(printf '  %-14s FAILED  (%ds%s; exit %d; log %s)' "$name" $((SECONDS - start)) \
            "$counts" "$status" "$log")")
    fi
    return "$status"
}

skip() {
    any_failed=1
    summary+=("$(printf '  %-14s SKIPPED (%s)' "$1" "$2")")
}

fmt_check() {
    cargo fmt --all --check && cargo fmt --check --manifest-path boot/Cargo.toml
}

clippy_boot() {
    # --target-dir, not CARGO_TARGET_DIR: see build_image_tool in scripts/build.sh.
    RUSTC_BOOTSTRAP=1 cargo clippy --release --manifest-path boot/Cargo.toml \
        --target-dir "$IMAGE_TOOL_DIR" --all-targets -- -D warnings
}

# Test files of the tools crate: qemu_*.rs need QEMU and built images, the others are host tests.
tools_tests() {
    local want="$1" file name
    for file in tools/tests/*.rs; do
        [[ -e "$file" ]] || continue
        name="$(basename "$file" .rs)"
        if [[ "$want" == qemu && "$name" == qemu_* ]] || [[ "$want" == host && "$name" != qemu_* ]]; then
            printf -- '--test\n%s\n' "$name"
        fi
    done
}

host_tests() {
    local status=0 args=()
    mapfile -t args < <(tools_tests host)
    cargo test --no-fail-fast --workspace --exclude atoll-kernel --exclude tools || status=1
    # The tools tests run whole programs under the reference interpreter (wasmi; `lexicon`'s
    # inits are hundreds of millions of wasm instructions): release, sharing the QEMU stage's
    # build. The crates' own unit tests above keep the debug assertions.
    cargo test --release --no-fail-fast -p tools --lib --bins "${args[@]}" || status=1
    cargo test -p tools --doc || status=1
    return "$status"
}

qemu_tests() {
    local args=()
    mapfile -t args < <(tools_tests qemu)
    ((${#args[@]})) || {
        echo "no tools/tests/qemu_*.rs"
        return 1
    }
    cargo test --no-fail-fast -p tools --release "${args[@]}" -- --test-threads 2
}

if ! stage setup scripts/setup.sh; then
    skip everything-else "set-up failed: install what it names and run again"
else
    stage fmt fmt_check
    stage clippy-host cargo clippy --all-targets -- -D warnings
    kernel_packages=()
    for package in "${KERNEL_PACKAGES[@]}"; do
        kernel_packages+=(-p "$package")
    done
    stage clippy-kernel cargo clippy "${kernel_packages[@]}" --target x86_64-unknown-none --release -- -D warnings
    build_ok=0
    stage build scripts/build.sh --firmware all --console && build_ok=1
    stage clippy-boot clippy_boot
    stage host-tests host_tests
    if ((!run_qemu)); then
        summary+=("$(printf '  %-14s not run (--no-qemu)' qemu-tests)")
    elif ((build_ok)); then
        stage qemu-tests qemu_tests
    else
        skip qemu-tests "the build failed"
    fi
fi

printf '\n=== summary (%ds)\n' $((SECONDS - started))
printf '%s\n' "${summary[@]}"
printf 'tests: %d passed, %d failed\n' "$tests_passed" "$tests_failed"
exit "$any_failed"
