#!/usr/bin/env bash
# evo-train's configuration: InternEvo's keys in an INI file, the converter
# from InternEvo's Python configs, --set, validation, and --dry-run's sums.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
conv() { "$PY" "$EVO_ROOT/scripts/internevo-config" "$@"; }
params() { evo-train --dry-run "$@" | awk '$1 == "parameters" {print $2}'; }

# InternEvo's own 7B config, converted as is: InternLM-7B has 7,321,948,160 parameters
# (embedding and head 2 x 103168 x 4096, 32 layers of 4 x 4096^2 + 3 x 4096 x 11008 + biases and norms).
conv "$EVO_ROOT/configs/internevo/7B_sft.py" >7b.ini 2>ignored.txt
check "the 7B InternEvo config converts" test -s 7b.ini
check "ignored InternEvo keys are listed, not dropped silently" grep -q "model.use_flash_attn" ignored.txt
check "InternLM-7B: 7321948160 parameters" test "$(params 7b.ini)" = 7321948160
check "the committed configs/internlm-7b.ini is the converter's output" \
    bash -c "tail -n +2 '$EVO_ROOT/configs/internlm-7b.ini' | cmp - <(tail -n +2 7b.ini)"
check "mlp of 7B is 11008 (int(4096 x 8/3) rounded up to 256)" sh -c "evo-train --dry-run 7b.ini | grep -q 'mlp 11008'"
check "7B: 13.64 GiB of fp16 weights per rank" sh -c "evo-train --dry-run 7b.ini | grep -Eq 'weights +13.64 GiB'"
# LLaMA-2-7B by --set: no biases, vocab 32000: 6,738,415,616 parameters.
check "LLaMA-2-7B layout by --set: 6738415616 parameters" \
    test "$(params --set model.vocab_size=32000 --set model.no_bias=true 7b.ini)" = 6738415616
# InternLM2-7B: GQA with 8 kv heads, mlp_ratio 3.5 (14336), vocab 92544, no biases: 7,737,708,544.
check "InternLM2-7B (GQA) by --set: 7737708544 parameters" \
    test "$(params --set model.vocab_size=92544 --set model.no_bias=true --set model.num_kv_attention_heads=8 \
        --set model.mlp_ratio=3.5 7b.ini)" = 7737708544
check "zero1 over 8 ranks divides the optimizer state" \
    sh -c "evo-train --dry-run --world 16 7b.ini | grep -q '16 ranks = tensor 1 x pipeline 1 x data 16, ZeRO-1 over 8'"
check "ZeRO-2 on 8 ranks: the 7B's fp32 gradients 4.99 GiB a rank, not 27.28" sh -c \
    "evo-train --dry-run --world 8 --set parallel.zero1.shard_grads=true 7b.ini |
        grep -Eq 'gradients \(fp32\) +4.99 GiB \(ZeRO-2: 916455424 kept, a window of 422580224\)'"
# --memory: the fullest rank of the layout (every pipeline stage, every
# zero1 rank) against what a GPU has.
check_fails "7B on 8 ranks needs 67.68 GiB a rank: refused by --memory 60" 1 \
    "needs 67.68 GiB, more than the 60.00 GiB of --memory" evo-train --dry-run --world 8 --memory 60 7b.ini
check "7B on 8 ranks with recomputation and ZeRO-2 (30.81 GiB) fits --memory 60" evo-train --dry-run --world 8 \
    --memory 60 --set model.checkpoint=1 --set parallel.zero1.shard_grads=true 7b.ini
check "pipeline 2, one row a step: the last stage (head, logits) is the fullest rank" sh -c \
    "evo-train --dry-run --world 2 --set parallel.zero1=1 --set parallel.pipeline.size=2 --set data.micro_num=1 7b.ini |
        grep -q 'the fullest rank .* GiB (pipeline stage 1, zero1 rank 0)'"
check "pipeline 2 x zero1 8: zero1 rank 1 of stage 0 keeps the most (InternEvo's deal)" sh -c \
    "evo-train --dry-run --world 16 --set parallel.pipeline.size=2 --set data.micro_num=4 7b.ini |
        grep -q 'the fullest rank .* GiB (pipeline stage 0, zero1 rank 1)'"
check_fails "--memory wants a positive number" 2 "memory wants a positive number" \
    evo-train --dry-run --memory -1 7b.ini
check_fails "--memory without --dry-run is a usage error" 2 "memory goes with --dry-run" evo-train --memory 80 7b.ini

# The printed configuration loads back to itself.
evo-train --dry-run 7b.ini | sed '/^# model/,$d' >printed.ini
check "the resolved config round-trips" sh -c "evo-train --dry-run printed.ini | sed '/^# model/,\$d' | cmp - printed.ini"
check "InternEvo's fraction and power notation" \
    sh -c "evo-train --dry-run --set model.mlp_ratio=8/3 --set grad_scaler.fp16.initial_scale=2**16 7b.ini | grep -q 'initial_scale = 65536'"
check "the demo config is valid" evo-train --dry-run "$EVO_ROOT/configs/demo.ini"

# Errors: file:line, the key, and what was expected.
printf '[model]\nhidden_size = 4096\nlearning_rate = 3\n' >bad.ini
check_fails "an unknown key names file:line" 1 "bad.ini:3: unknown key learning_rate in \[model\]" evo-train --dry-run bad.ini
printf '[model]\nlr = 3\n' >bad2.ini
check_fails "a key in the wrong section suggests the right one" 1 "did you mean \[adam\] lr" evo-train --dry-run bad2.ini
printf '[data]\nseq_len = lots\n' >bad3.ini
check_fails "a malformed value is named" 1 "bad3.ini:2: \[data\] seq_len: 'lots' is not a whole number" evo-train --dry-run bad3.ini
check_fails "inconsistent shapes are refused" 1 "hidden_size 4100 is not a multiple of num_attention_heads 32" \
    evo-train --dry-run --set model.hidden_size=4100 7b.ini
check_fails "--set of an unknown key is a usage error" 2 "unknown key" evo-train --dry-run --set adam.momentum=1 7b.ini
check_fails "a missing config file" 1 "nope.ini: No such file" evo-train --dry-run nope.ini
sed 's/norm_type="rmsnorm"/norm_type="layernorm"/' "$EVO_ROOT/configs/internevo/7B_sft.py" >ln.py
check_fails "the converter refuses settings evo-train would ignore" 1 "norm_type = 'layernorm' is not supported" conv ln.py
