#!/usr/bin/env bash
# make demo: the evo pipeline on the bundled data (data/corpus, data/tokenizer).
# tokenize -> pack -> inspect -> train a small model on the CPU -> checkpoint
# -> inspect it -> convert it to a HuggingFace directory.
# EVO_DEMO_DIR: where the files go (default demo/); EVO_DEMO_STEPS: a shorter run.
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
echo "== evo-pack: shuffled and cut into rows of 256 x 4 tokens, 1% held out -> $out/train.pack"
"$bin/evo-pack" -s 256 -b 4 --valid 0.01 --valid-out "$out/valid.pack" -o "$out/train.pack" "$out/corpus.tok"
echo
echo "== evo-pack --info $out/train.pack"
"$bin/evo-pack" --info "$out/train.pack"
echo
echo "== what the model is fed: row 0 of a pack of short rows (32 x 2 tokens), decoded per segment"
"$bin/evo-pack" -q -s 32 -b 2 -o "$out/short.pack" "$out/corpus.tok"
"$bin/evo-pack" --dump 0 --tokenizer "$model" "$out/short.pack"
echo
echo "== evo-train configs/demo.ini: 7.5 M parameters, 300 steps on the CPU -> $out/ckpt"
rm -rf "$out/ckpt"
"$bin/evo-train" --set data.train_folder="$out/train.pack" --set data.valid_folder="$out/valid.pack" \
    --set ckpt.save_ckpt_folder="$out/ckpt" ${EVO_DEMO_STEPS:+--set data.total_steps=$EVO_DEMO_STEPS} \
    "$root/configs/demo.ini"
echo
echo "== the last checkpoint"
last=$(ls "$out/ckpt" | grep -E '^[0-9]+$' | sort -n | tail -1)
"$bin/evo-ckpt" ls "$out/ckpt"
"$bin/evo-ckpt" verify "$out/ckpt/$last"
echo
echo "== evo-convert2hf: the last checkpoint as a HuggingFace LlamaForCausalLM -> $out/hf"
rm -rf "$out/hf"
"$bin/evo-convert2hf" "$out/ckpt/$last" -o "$out/hf" -t "$model"
ls -l "$out/hf"
