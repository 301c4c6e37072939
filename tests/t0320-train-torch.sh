#!/usr/bin/env bash
# evo-train against PyTorch: 10 optimizer steps from the same weights (the
# reference loads evo's step-0 checkpoint) on the same rows (evo-pack
# --dump), InternEvo's schedule, clipping and AdamW written out in float64
# by tests/ref/torch-train.py; losses within 1e-5, gradient norms and the
# final weights within 1e-3 (tests/ref/train-compare.py says why). Two models: MHA
# with biases and label smoothing, GQA without biases with the beta2
# scheduler. evo's losses are also held against the committed golden files
# tests/golden/train-*.jsonl, which torch-train.py wrote: regenerate them
# with EVO_WRITE_GOLDEN=1 TESTS=t0320-train-torch.sh tests/run.sh.
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    fail "PyTorch importable" "/usr/bin/python3 cannot import torch: run scripts/install-deps (python3-torch)"
    exit 0
fi
head -n 300 "$EVO_ROOT/data/corpus/en.txt" >en.txt
evo-tokenize -q -t "$EVO_ROOT/data/tokenizer/evo-bpe8k.model" -o c.tok en.txt
evo-pack -q -s 32 -b 2 -o train.pack c.tok
evo-pack --dump 0-99 train.pack >rows.txt
cat >base.ini <<'CFG'
[data]
seq_len = 32
micro_bsz = 2
train_folder = train.pack
[model]
vocab_size = 8000
hidden_size = 32
num_layers = 2
dtype = fp32
[adam]
lr = 1e-2
weight_decay = 0.1
[lr_scheduler]
total_steps = 10
warmup_ratio = 0.2
eta_min = 1e-3
CFG

# compare NAME --set...: step-0 checkpoint, 10 evo steps, 10 reference steps.
compare() {
    local name=$1 rc
    shift
    evo-train -q "$@" --set data.total_steps=0 --set ckpt.save_ckpt_folder=$name.0 base.ini &&
        evo-train -q "$@" --set data.total_steps=10 --set ckpt.save_ckpt_folder=$name base.ini ||
        { fail "$name: evo-train runs"; return; }
    /usr/bin/python3 "$EVO_ROOT/tests/ref/torch-train.py" $name.0/0 rows.txt 10 --save-weights $name.npz \
        >$name.torch.jsonl 2>$name.torch.err || { fail "$name: torch-train.py runs" "$(cat $name.torch.err)"; return; }
    [ -n "${EVO_WRITE_GOLDEN:-}" ] && cp $name.torch.jsonl "$EVO_ROOT/tests/golden/train-$name.jsonl"
    for ref in $name.torch.jsonl "$EVO_ROOT/tests/golden/train-$name.jsonl"; do
        local args=("$name/metrics.jsonl" "$ref")
        [ "$ref" = $name.torch.jsonl ] && args+=("$name/10/model_tp0_pp0.evo" $name.npz "$name.0/0/model_tp0_pp0.evo")
        PYTHONPATH=$EVO_ROOT/tests/ref /usr/bin/python3 "$EVO_ROOT/tests/ref/train-compare.py" "${args[@]}" >cmp.log 2>&1
        rc=$?
        while read -r status what; do
            case $status in
            ok) pass "$name vs $(basename "$ref"): $what" ;;
            FAIL) fail "$name vs $(basename "$ref"): $what" ;;
            esac
        done <cmp.log
        grep -q '^FAIL ' cmp.log || [ $rc -eq 0 ] || fail "$name: train-compare.py completes" "$(tail -5 cmp.log)"
    done
}

compare mha --set model.num_attention_heads=4 --set loss.label_smoothing=0.1 --set data.micro_num=2 \
    --set hybrid_zero_optimizer.clip_grad_norm=1.0
compare gqa --set model.num_attention_heads=8 --set model.num_kv_attention_heads=2 --set model.no_bias=true \
    --set model.rope_base=500 --set data.micro_num=3 --set beta2_scheduler.c=0.8 \
    --set beta2_scheduler.init_beta2=0.9 --set hybrid_zero_optimizer.clip_grad_norm=0.5
