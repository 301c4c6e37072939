#!/usr/bin/env bash
# evo-convert2hf both ways. The HF side is checked by tests/ref/torch-hf.py,
# written from the Transformers semantics without evo code: converted
# weights give evo's logits in its LLaMA (fp32, relative error < 1e-5),
# bf16 is PyTorch's rounding, and it writes HF directories as
# save_pretrained does (safetensors layout, sharding, index). Round trips
# are byte for byte both ways; bad inputs fail in one line, exit 1, and
# leave nothing that looks complete.
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
ref() { /usr/bin/python3 "$EVO_ROOT/tests/ref/torch-hf.py" "$@"; }
tok=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
logits() { "$EVO_TESTBIN/ckpt-logits" "$@"; }
# nothing_left DIR: no DIR, and no temporary of it, in its parent
nothing_left() { test ! -e "$1" && test -z "$(ls -A "$(dirname "$1")" | grep -F ".$(basename "$1").tmp")"; }

# --- usage --------------------------------------------------------------------
check "--help" evo-convert2hf --help
check "--version" evo-convert2hf --version
check_fails "no checkpoint: usage error" 2 "want one checkpoint" evo-convert2hf -o x -t "$tok"
check_fails "no -o: usage error" 2 "where to" evo-convert2hf ckpt -t "$tok"
check_fails "no tokenizer: usage error" 2 "which tokenizer" evo-convert2hf ckpt -o x
check_fails "--dtype fp8: usage error" 2 "fp32, bf16 or fp16" evo-convert2hf --dtype fp8 ckpt -o x -t "$tok"
check_fails "--max-shard 5XB: usage error" 2 "max-shard" evo-convert2hf --max-shard 5XB ckpt -o x -t "$tok"
check_fails "--step without --from-hf: usage error" 2 "from-hf" evo-convert2hf --step 3 ckpt -o x -t "$tok"

# --- a checkpoint evo-train wrote: InternLM v1 (MHA, q/k/v/o biases) -----------
tiny_training
evo-train -q --set ckpt.save_ckpt_folder=a --set data.total_steps=2 --set ckpt.checkpoint_every=2 tiny.ini
ids=$(echo "The quick brown fox jumps over the lazy dog, and rests in the sun." | evo-tokenize -q -t "$tok" --ids)
check "evo's logits of the checkpoint (evo_ckpt_load_model, forward)" logits a/2 a.f32 $ids

check "evo -> HF" evo-convert2hf -q a/2 -o hf -t "$tok"
check "HF directory: config, weights, generation config, tokenizer" test -f hf/config.json -a -f hf/model.safetensors \
    -a -f hf/generation_config.json -a -f hf/tokenizer.model -a -f hf/tokenizer_config.json
check "tokenizer.model is the tokenizer, byte for byte" cmp "$tok" hf/tokenizer.model
check "config.json: LlamaForCausalLM, attention_bias, MHA, sizes, eps, theta, BOS/EOS" /usr/bin/python3 -c '
import json, sys
c = json.load(open("hf/config.json"))
want = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": True, "mlp_bias": False,
        "hidden_size": 32, "intermediate_size": 256, "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_hidden_layers": 2, "vocab_size": 8000, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 32, "tie_word_embeddings": False, "torch_dtype": "float32",
        "bos_token_id": 1, "eos_token_id": 2}
bad = {k: c.get(k) for k in want if c.get(k) != want[k]}
sys.exit(f"differs: {bad}" if bad else 0)'
check "tokenizer_config.json: LlamaTokenizer, <s> and </s>" sh -c 'cd hf &&
    grep -q "\"tokenizer_class\": \"LlamaTokenizer\"" tokenizer_config.json &&
    grep -q "\"bos_token\": \"<s>\"" tokenizer_config.json && grep -q "\"eos_token\": \"</s>\"" tokenizer_config.json'
check "evo -> HF -> evo: the model file byte for byte" sh -c \
    'evo-convert2hf -q --from-hf hf -o back --step 2 && cmp a/2/model_tp0_pp0.evo back/2/model_tp0_pp0.evo'
check "tp 2 x pp 2 (evo-ckpt reshard): the same HF weights, pieces merged" sh -c "evo-ckpt reshard a/2 --tp 2 \
    --pp 2 -o rs/2 2>/dev/null && evo-convert2hf -q rs/2 -o hf-rs -t '$tok' &&
    cmp hf/model.safetensors hf-rs/model.safetensors"
check "a save folder converts its newest checkpoint" sh -c \
    "evo-convert2hf -q a -o hf-folder -t '$tok' && cmp hf/model.safetensors hf-folder/model.safetensors"

# A tokenizer.json (byte-level BPE, LLaMA-3's special tokens) goes in as is,
# for PreTrainedTokenizerFast.
cat >tok.json <<'EOF'
{"added_tokens": [{"id": 5, "content": "<|begin_of_text|>", "special": true},
                  {"id": 6, "content": "<|end_of_text|>", "special": true}],
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
 "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}},
                    {"Sequence": {"id": "A"}}], "special_tokens": {"<|begin_of_text|>": {"ids": [5]}}},
 "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4, "<|begin_of_text|>": 5,
           "<|end_of_text|>": 6}, "merges": ["a b", "ab c"]}}
EOF
check "tokenizer.json: copied, for PreTrainedTokenizerFast, BOS 5, EOS <|end_of_text|>" sh -c '
    evo-convert2hf -q a/2 -o hfj -t tok.json && cmp tok.json hfj/tokenizer.json &&
    grep -q PreTrainedTokenizerFast hfj/tokenizer_config.json && grep -q "\"bos_token_id\": 5" hfj/config.json &&
    grep -q "\"eos_token\": \"<|end_of_text|>\"" hfj/tokenizer_config.json'

check "--dtype bf16" evo-convert2hf -q --dtype bf16 a/2 -o hf16 -t "$tok"
check "bf16 = PyTorch's rounding of the fp32 weights" ref same-weights hf hf16
check "HF bf16 -> evo -> HF: the same bf16 file" sh -c "evo-convert2hf -q --from-hf hf16 -o b16 &&
    evo-convert2hf -q b16 -o hf16b -t '$tok' && cmp hf16/model.safetensors hf16b/model.safetensors"

# 100 KB: the embedding and the head (1 MB each) get shards of their own,
# the layers (115 KB each) fill three.
check "--max-shard 100KB: sharded" evo-convert2hf -q --max-shard 100KB a/2 -o hfs -t "$tok"
n=$(ls hfs | grep -c '^model-0000.-of-00005\.safetensors$')
check "--max-shard 100KB: 5 shards (got $n) and an index" test "$n" = 5 -a -f hfs/model.safetensors.index.json
check "sharded -> evo: the model file byte for byte" sh -c \
    'evo-convert2hf -q --from-hf hfs -o backs --step 2 && cmp a/2/model_tp0_pp0.evo backs/2/model_tp0_pp0.evo'

# --- HF directories as save_pretrained writes them -------------------------------
# LLaMA-3 style: GQA, no biases, bf16, three shards; and tied embeddings.
ref make g --kv-heads 2 --dtype BF16 --max-shard 400000 --seed 3
ref make t --tied 1 --seed 4
check "HF -> evo (GQA, no bias, bf16, 3 shards)" evo-convert2hf -q --from-hf g -o imp
check "config.ini: no_bias, 2 kv heads, MLP 96 (32 x 3), bf16" sh -c 'cd imp/0 &&
    grep -q "^no_bias = true" config.ini &&
    grep -q "^num_kv_attention_heads = 2" config.ini && grep -q "^mlp_ratio = 3$" config.ini &&
    grep -q "^multiple_of = 1$" config.ini && grep -q "^dtype = bf16" config.ini'
check "HF -> evo -> HF: shards and index byte for byte" sh -c "evo-convert2hf -q imp -o g2 -t '$tok' \
    --max-shard 400000 && cd g && for f in *.safetensors *.index.json; do cmp \$f ../g2/\$f || exit 1; done"
check "HF -> evo (tied embeddings: the head is a copy)" evo-convert2hf -q --from-hf t -o timp
check "evo's logits of the imported GQA checkpoint" logits imp/0 g.f32 $ids
check "evo's logits of the imported tied checkpoint" logits timp/0 t.f32 $ids
check "logits: HF LLaMA = evo's forward (MHA+bias, GQA no-bias bf16, tied)" ref compare "$ids" hf=a.f32 g=g.f32 \
    t=t.f32

# The imported model fine-tunes: evo-train with its [model] section.
{ sed -n '/^\[model\]/,/^$/p' imp/0/config.ini; sed -n '/^\[data\]/,/^$/p' tiny.ini; } >ft.ini
out=$(evo-train --set model.dtype=fp32 --set ckpt.load_model_only_folder=imp --set ckpt.save_ckpt_folder=ft \
    ft.ini 2>&1)
check "evo-train fine-tunes the imported checkpoint (load_model_only)" grep -q "weights from imp/0" <<<"$out"
check "the fine-tuned model converts back" evo-convert2hf -q ft -o ft-hf -t "$tok"

# --- bad inputs: one line, exit 1, nothing that looks complete ---------------------
check_fails "output exists (evo -> HF)" 1 "hf: already exists" evo-convert2hf a/2 -o hf -t "$tok"
check_fails "output exists (HF -> evo)" 1 "imp/0: already exists" evo-convert2hf --from-hf g -o imp
cp -r a bad && printf 'X' | dd of=bad/2/model_tp0_pp0.evo bs=1 seek=300000 conv=notrunc 2>/dev/null
check_fails "corrupt checkpoint: checksum error" 1 "model_tp0_pp0.evo: checksum" evo-convert2hf bad/2 -o o1 -t "$tok"
check "corrupt checkpoint: nothing left" nothing_left o1
check_fails "not a checkpoint" 1 "g: not a complete checkpoint" evo-convert2hf g -o o2 -t "$tok"

# bad HF directories, each a copy of g with one fault
bad() { rm -rf "$1" && cp -r g "$1"; }
bad arch && sed -i 's/"LlamaForCausalLM"/"GPT2LMHeadModel"/' arch/config.json
check_fails "unknown architecture" 1 "architecture GPT2LMHeadModel is not supported" evo-convert2hf --from-hf arch -o o3
bad dtype && sed -i 's/"torch_dtype": "[a-z0-9]*"/"torch_dtype": "float64"/' dtype/config.json
check_fails "an unknown torch_dtype" 1 'torch_dtype "float64": want float32, float16 or bfloat16' \
    evo-convert2hf --from-hf dtype -o o8
bad nulls && sed -i 's/"rope_theta": [0-9.e+]*/"rope_theta": null/' nulls/config.json
check "null in config.json is Transformers' None: the default" evo-convert2hf -q --from-hf nulls -o nulls-imported
bad shape && sed -i 's/"intermediate_size": 96/"intermediate_size": 128/' shape/config.json
check_fails "wrong shape" 1 "has shape \[96, 32\], config.json's model wants \[128, 32\]" \
    evo-convert2hf --from-hf shape -o o4
# edit_index DIR PYTHON: runs PYTHON on the weight map m of DIR's index
edit_index() {
    /usr/bin/python3 -c "
import json
p = '$1/model.safetensors.index.json'
j = json.load(open(p))
m = j['weight_map']
$2
open(p, 'w').write(json.dumps(j))"
}
bad moved && edit_index moved 'm["model.norm.weight"] = "model-00001-of-00003.safetensors"'
check_fails "index naming a tensor where it is not" 1 "no tensor model.norm.weight \(the index says it is here\)" \
    evo-convert2hf --from-hf moved -o o5
bad missing && edit_index missing 'del m["model.norm.weight"]'
check_fails "index without a tensor" 1 "index.json: no tensor model.norm.weight" evo-convert2hf --from-hf missing -o o6
bad short && truncate -s -1000 short/model-00002-of-00003.safetensors
check_fails "truncated shard" 1 "00002-of-00003.safetensors: offset [0-9]+: .*past the end of the file" \
    evo-convert2hf --from-hf short -o o7
check "bad HF directories: nothing left" sh -c 'for o in o3 o4 o5 o6 o7 o8; do test ! -e $o/0 || exit 1; done'

# hostile safetensors: errors with the offset, never a crash (check_fails
# also fails on a sanitizer report)
ref make s --seed 5
ref corrupt s/model.safetensors hostile
for kind in short truncated header-past-eof bad-json not-object duplicate-name overlap reversed-range shape-mismatch \
    huge-shape unknown-dtype; do
    rm -rf "h-$kind" && mkdir "h-$kind" && cp s/config.json "h-$kind/" && cp "hostile-$kind.safetensors" \
        "h-$kind/model.safetensors"
    check_fails "hostile safetensors ($kind): error at an offset" 1 "model.safetensors: offset [0-9]+: " \
        evo-convert2hf --from-hf "h-$kind" -o "o-$kind"
    check "hostile safetensors ($kind): nothing left" test ! -e "o-$kind/0"
done
