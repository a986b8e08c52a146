#!/usr/bin/env bash
# Fetches the large real-world WebAssembly modules the benchmark's "large modules" table
# compiles: builds by other people, taken unchanged from their npm packages (pinned versions,
# checked by SHA-256). Nothing is committed; the files land in target/bench-modules/.
#
#   bench/fetch-modules.sh [DIR]
#
# module          language  from (npm package@version, path in the package)
# sqlite.wasm     C         sql.js@1.14.0        dist/sql-wasm.wasm       (SQLite, Emscripten)
# onigasm.wasm    C         onigasm@2.2.5        lib/onigasm.wasm         (Oniguruma regexes)
# brotli.wasm     Rust      brotli-wasm@3.0.1    pkg.node/brotli_wasm_bg.wasm (wasm-bindgen)
# esbuild.wasm    Go        esbuild-wasm@0.25.0  esbuild.wasm             (12 MB; Go's wasm port)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/bench-modules}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "error: npm is needed (Debian package npm)" >&2; exit 1; }

fetch() { # name package@version path-in-package sha256
    local name=$1 pkg=$2 path=$3 sum=$4
    if [ -f "$out/$name" ] && echo "$sum  $out/$name" | sha256sum -c --status; then
        echo "have $name"
        return
    fi
    (cd "$work" && npm pack "$pkg" --silent >/dev/null)
    local tgz
    tgz="$(ls "$work"/*.tgz | head -n1)"
    tar xzf "$tgz" -C "$work" "package/$path"
    echo "$sum  $work/package/$path" | sha256sum -c --status ||
        { echo "error: $pkg $path: SHA-256 differs from the pinned one" >&2; exit 1; }
    mv "$work/package/$path" "$out/$name"
    rm -rf "$work"/*
    echo "fetched $name ($(stat -c %s "$out/$name") bytes) from $pkg"
}

fetch sqlite.wasm sql.js@1.14.0 dist/sql-wasm.wasm \
    9125e039f90b91617b6327d6fe271865248a1ae36fa3857d022cd213c730f6f6
fetch onigasm.wasm onigasm@2.2.5 lib/onigasm.wasm \
    b63d2d2d3b0be091933583a3dd52ebb60bbbb26cc567e3cff11b3f9a1ad7a2b9
fetch brotli.wasm brotli-wasm@3.0.1 pkg.node/brotli_wasm_bg.wasm \
    6d5e77ad86911b665421dc98e6cedecb0977637afe5cf73d574758d9a2cade90
fetch esbuild.wasm esbuild-wasm@0.25.0 esbuild.wasm \
    92303a29c9d60620a756925939bbb0f60800fa1eed14a29f93b8a3e9394ac0b9
