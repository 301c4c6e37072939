#!/usr/bin/env bash
# The output is byte-identical whatever the thread count.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
corpus_text in.txt
evo-tokenize -q -t "$M" -j 1 -o j1.tok in.txt
for j in 2 3 8; do
    check "-j $j output equals -j 1" sh -c "evo-tokenize -q -t '$M' -j $j in.txt | cmp - j1.tok"
done
check "-j 4 on JSONL equals -j 1" bash -c \
    "evo-tokenize -q -t '$M' -j 4 '$EVO_ROOT/data/corpus/code.jsonl' | cmp - <(evo-tokenize -q -t '$M' -j 1 '$EVO_ROOT/data/corpus/code.jsonl')"
