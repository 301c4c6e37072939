#!/usr/bin/env bash
# make demo: the evo pipeline on the bundled data (data/corpus, data/tokenizer).
# Today: tokenize -> inspect. Later stages (pack, train, convert) join as they land.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${EVO_BIN:-$root/bin}
out=${EVO_DEMO_DIR:-$root/demo}
mkdir -p "$out"
model=$root/data/tokenizer/evo-bpe8k.model

echo "== evo-tokenize: bundled corpus (English, Chinese, code) -> $out/corpus.tok"
"$bin/evo-tokenize" -t "$model" -o "$out/corpus.tok" \
    "$root/data/corpus/en.txt" "$root/data/corpus/zh.txt" "$root/data/corpus/code.jsonl"
echo
echo "== evo-tokenize --info $out/corpus.tok"
"$bin/evo-tokenize" --info "$out/corpus.tok"
echo
echo "== first document, as ids and decoded back"
head -n 1 "$root/data/corpus/en.txt" | cut -c1-120 | "$bin/evo-tokenize" -q -t "$model" --ids
head -n 1 "$root/data/corpus/en.txt" | cut -c1-120 | "$bin/evo-tokenize" -q -t "$model" |
    "$bin/evo-tokenize" --decode -t "$model" -
