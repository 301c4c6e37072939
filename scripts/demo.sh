#!/usr/bin/env bash
# make demo: the evo pipeline on the bundled data (data/corpus, data/tokenizer).
# Today: tokenize -> pack -> inspect. Later stages (train, convert) join as they land.
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
echo
echo "== evo-pack: shuffled and cut into rows of 512 x 2 tokens, 1% held out -> $out/train.pack"
"$bin/evo-pack" -s 512 -b 2 --valid 0.01 --valid-out "$out/valid.pack" -o "$out/train.pack" "$out/corpus.tok"
echo
echo "== evo-pack --info $out/train.pack"
"$bin/evo-pack" --info "$out/train.pack"
echo
echo "== what the model is fed: row 0 of a pack of short rows (32 x 2 tokens), decoded per segment"
"$bin/evo-pack" -q -s 32 -b 2 -o "$out/short.pack" "$out/corpus.tok"
"$bin/evo-pack" --dump 0 --tokenizer "$model" "$out/short.pack"
