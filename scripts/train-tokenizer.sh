#!/usr/bin/env bash
# train-tokenizer.sh - train evo's bundled SentencePiece BPE tokenizers on
# data/corpus with Debian's spm_train (package "sentencepiece").
#
#   data/tokenizer/evo-bpe8k.model/.vocab       8000 pieces, identity normalization
#   data/tokenizer/evo-bpe4k-nfkc.model/.vocab  4000 pieces, nmt_nfkc normalization
#
# Training text: data/corpus/en.txt + zh.txt + the "text" of every object in
# code.jsonl (one sentence per line; code keeps its line structure).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CORPUS=data/corpus
OUTDIR=data/tokenizer
PY=/usr/bin/python3

if ! command -v spm_train >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends sentencepiece >&2
    else
        echo "train-tokenizer: spm_train not found; apt-get install sentencepiece" >&2
        exit 1
    fi
fi
for f in en.txt zh.txt code.jsonl; do
    [ -s "$CORPUS/$f" ] || { echo "train-tokenizer: $CORPUS/$f missing (run scripts/make-corpus.sh)" >&2; exit 1; }
done

export LC_ALL=C.UTF-8
mkdir -p "$OUTDIR"
# Temporary training text. A fixed relative path (removed on exit) keeps the
# trainer_spec stored inside the .model files identical from run to run.
TRAIN=$OUTDIR/.train-text.txt
trap 'rm -f "$TRAIN"' EXIT

cat "$CORPUS/en.txt" "$CORPUS/zh.txt" > "$TRAIN"
"$PY" - "$CORPUS/code.jsonl" >> "$TRAIN" <<'PYEOF'
import json, sys
out = sys.stdout
for line in open(sys.argv[1], encoding='utf-8'):
    text = json.loads(line)['text']
    for l in text.split('\n'):
        if l.strip():
            out.write(l + '\n')
PYEOF

COMMON=(--input="$TRAIN" --model_type=bpe --byte_fallback=true
        --character_coverage=0.9995 --split_digits=true
        --add_dummy_prefix=true --allow_whitespace_only_pieces=true
        --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1
        '--user_defined_symbols=<|im_start|>,<|im_end|>'
        --num_threads=2 --max_sentence_length=16384
        --input_sentence_size=200000 --shuffle_input_sentence=true
        --random_seed=20240101 --minloglevel=1)

time_it() { local s=$SECONDS; "$@"; echo "train-tokenizer: $(( SECONDS - s )) s: ${*: -1}" >&2; }

time_it spm_train "${COMMON[@]}" --vocab_size=8000 \
    --normalization_rule_name=identity --remove_extra_whitespaces=false \
    --model_prefix="$OUTDIR/evo-bpe8k"

time_it spm_train "${COMMON[@]}" --vocab_size=4000 \
    --normalization_rule_name=nmt_nfkc --remove_extra_whitespaces=true \
    --model_prefix="$OUTDIR/evo-bpe4k-nfkc"

ls -l "$OUTDIR" >&2
