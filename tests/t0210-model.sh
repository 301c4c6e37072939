#!/usr/bin/env bash
# The transformer (src/lib/compute/transformer.c) forward and backward over one
# packed row against a PyTorch LLaMA-style model in float64: tests/c/model-check
# writes params, logits, loss and gradients; tests/ref/torch-model.py
# recomputes and compares them, one line per tensor, and checks that the
# packed row gives the logits of its segments run alone.
. "$(dirname "$0")/lib.sh"
modelcheck=$EVO_TESTBIN/model-check
export OMP_NUM_THREADS=2
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    fail "PyTorch importable" "/usr/bin/python3 cannot import torch: run scripts/install-deps (python3-torch)"
    exit 0
fi
small="--set model.vocab_size=512 --set model.hidden_size=64 --set model.num_layers=2
       --set data.seq_len=16 --set data.micro_bsz=2"
# Wider init than InternEvo's 0.006 so attention and the MLP are far from
# linear and the comparison means something.
wide="--set model.init_std=0.2 --set model.embed_init_std=1"

# model NAME DIR ARGS...: runs model-check and the reference, one result per line.
model() {
    local name=$1 dir=$2 rc
    shift 2
    mkdir "$dir"
    check "model-check $name" "$modelcheck" "$@" "$dir"
    [ -s "$dir/index.json" ] || return
    /usr/bin/python3 "$EVO_ROOT/tests/ref/torch-model.py" "$dir" ${INIT_LOSS:-} >"$dir.log" 2>&1
    rc=$?
    while read -r status what; do
        case $status in
        ok) pass "$name: $what" ;;
        FAIL) fail "$name: $what" ;;
        esac
    done <"$dir.log"
    grep -q '^FAIL ' "$dir.log" || [ $rc -eq 0 ] || fail "$name: torch-model.py completes" "$(tail -5 "$dir.log")"
}

# shellcheck disable=SC2086
model "MHA with biases" mha $small $wide --set model.num_attention_heads=4 \
    --set loss.label_smoothing=0.1
# shellcheck disable=SC2086
model "GQA without biases" gqa $small $wide --set model.num_attention_heads=8 \
    --set model.num_kv_attention_heads=2 --set model.no_bias=true --set model.rope_base=500
# InternEvo's own init: the logits are near zero, the loss near ln(vocab).
# shellcheck disable=SC2086
INIT_LOSS=--init-loss model "InternEvo init" init $small --set model.num_attention_heads=4

# Counter-based init and fixed reduction orders: another run, other thread count, same bits.
mkdir again
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 "$modelcheck" $small --set model.num_attention_heads=4 again >/dev/null 2>&1
check "init is independent of the thread count" cmp init/params.f32 again/params.f32
