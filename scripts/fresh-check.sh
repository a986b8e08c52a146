#!/usr/bin/env bash
# Proves that atoll's own files set up everything it needs, as on a fresh machine.
#
# usage: scripts/fresh-check.sh [--keep]
#
# Clones the committed repository (HEAD) into a temporary folder, links ../shared beside the
# clone (as the tests expect), and runs there with an empty CARGO_HOME and RUSTUP_HOME: the Rust
# toolchain is installed from nothing by rustup (only the rustup binary is taken from this
# machine), every crate is fetched from the registry, nothing is reused from this checkout's
# target/. It then runs, as a newcomer would:
#   1. the README's run command through a pipe: boot, `help`, `poweroff` (must exit 0 and print
#      the prompt and the help);
#   2. ./run-tests.sh --no-qemu (fmt, clippy, build of kernel and disk images, host tests).
# A missing install step fails here instead of on a user's machine. Logs stay in the temporary
# folder's logs/ (printed at the end; the folder is removed unless --keep or a step failed).
# Debian packages (QEMU, OVMF) cannot be uninstalled for the check; scripts/setup.sh installs
# them when missing.
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=0
for arg in "$@"; do
    case "$arg" in
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
        exit 0
        ;;
    *) die "fresh-check.sh: unknown argument '$arg' (usage: scripts/fresh-check.sh [--keep])" ;;
    esac
done

rustup_bin="$(command -v rustup)" || die "rustup is not installed: the check installs the toolchain with it"
shared="$(cd "$ATOLL_ROOT/.." && pwd)/shared"
[[ -d "$shared" ]] || die "$shared is missing: the tests expect ../shared beside the repository"

work="$(mktemp -d "${TMPDIR:-/tmp}/atoll-fresh.XXXXXX")"
logs="$work/logs"
mkdir -p "$logs" "$work/cargo/bin" "$work/rustup"
started=$SECONDS
failed=0

step() {
    local name="$1" start=$SECONDS status
    shift
    say "fresh-check: $name"
    "$@" >"$logs/$name.log" 2>&1
    status=$?
    if ((status == 0)); then
        say "fresh-check: $name ok ($((SECONDS - start)) s)"
    else
        failed=1
        say "fresh-check: $name FAILED (exit $status, $((SECONDS - start)) s); last lines of $logs/$name.log:"
        tail -n 30 "$logs/$name.log" >&2
    fi
    return "$status"
}

# The clone: what is committed, with ../shared beside it.
clone() {
    git clone --quiet --no-hardlinks "$ATOLL_ROOT" "$work/atoll" && ln -s "$shared" "$work/shared"
}

# A Rust home with nothing in it but rustup and its proxies (cargo, rustc, ... are rustup itself,
# dispatching on their name), and a PATH without this machine's own ~/.cargo/bin.
fresh_env() {
    cp "$rustup_bin" "$work/cargo/bin/rustup"
    local proxy
    for proxy in cargo rustc rustdoc rust-gdb rust-lldb cargo-clippy clippy-driver rustfmt cargo-fmt; do
        ln -s rustup "$work/cargo/bin/$proxy"
    done
    export CARGO_HOME="$work/cargo" RUSTUP_HOME="$work/rustup" RUSTUP_AUTO_INSTALL=0
    local dir path=""
    IFS=: read -r -a dirs <<<"$PATH"
    for dir in "${dirs[@]}"; do
        [[ -x "$dir/rustup" || -x "$dir/cargo" ]] && continue
        path="${path:+$path:}$dir"
    done
    export PATH="$CARGO_HOME/bin:$path"
    unset CARGO_TARGET_DIR RUSTC RUSTDOC RUSTFLAGS
    [[ -z "$(ls -A "$RUSTUP_HOME")" ]] || die "the fresh RUSTUP_HOME $RUSTUP_HOME is not empty"
    rustup set auto-self-update disable >/dev/null 2>&1 || true
}

boot_and_poweroff() {
    local out status
    out="$(printf 'help\npoweroff\n' | ATOLL_PROMPT_TIMEOUT=300 ./run-qemu.sh)"
    status=$?
    printf '%s\n' "$out"
    if ((status != 0)); then
        echo "fresh-check: run-qemu.sh exited $status (want 0 after poweroff)"
        return 1
    fi
    grep -q '^atoll> ' <<<"$out" || {
        echo "fresh-check: no prompt in the output"
        return 1
    }
    grep -q 'poweroff' <<<"$out" || {
        echo "fresh-check: \`help\` did not list poweroff"
        return 1
    }
}

if step clone clone; then
    fresh_env
    cd "$work/atoll" || exit 1
    step run-qemu boot_and_poweroff
    step run-tests ./run-tests.sh --no-qemu
    sed -n '/^=== summary/,$p' "$logs/run-tests.log" >&2
fi

total=$((SECONDS - started))
if ((failed)); then
    say "fresh-check: FAILED after $total s; logs and clone kept in $work"
    exit 1
fi
say "fresh-check: passed in $total s (toolchain, crates and first build from nothing)"
if ((keep)); then
    say "fresh-check: kept $work"
else
    rm -rf "$work"
fi
