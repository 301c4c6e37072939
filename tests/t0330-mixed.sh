#!/usr/bin/env bash
# Mixed precision's numerics on the CPU (evo-train --backend emulated, see
# backend.h): activations and the working copy of the weights rounded to
# model.dtype, fp32 master weights, gradients and moments, the loss scaler
# live. bf16 follows the fp32 curve within 2%; fp16 with too big a loss
# scale overflows, skips and backs off as InternEvo's scaler does; the
# working copy follows the master weights through a resume and ZeRO-1's
# broadcasts, bit for bit.
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
use_local_slurm
# Open MPI keeps allocations for the life of the process: not our leaks.
export LSAN_OPTIONS=suppressions=$EVO_ROOT/tests/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0
export OMPI_MCA_mca_base_component_disable_dlclose=1
tiny_training

run() { # NAME DTYPE [ARGS...]: 50 steps, checkpoints at 25 and 50, metrics in NAME/
    local name=$1 dtype=$2
    shift 2
    evo-train -q --set model.dtype="$dtype" --set data.total_steps=50 --set lr_scheduler.total_steps=50 \
        --set ckpt.checkpoint_every=25 --set ckpt.save_ckpt_folder="$name" "$@" tiny.ini
}

check "cpu fp32: 50 steps" run f32 fp32 --backend cpu
check "emulated fp32: 50 steps" run e32 fp32 --backend emulated
check "emulated fp32 is the CPU backend: the same losses" cmp <(steps f32/metrics.jsonl) <(steps e32/metrics.jsonl)
check "emulated fp32 is the CPU backend: the same weights" cmp f32/50/model_tp0_pp0.evo e32/50/model_tp0_pp0.evo

# --- bf16 ---------------------------------------------------------------------
check "emulated bf16: 50 steps" run b16 bf16 --backend emulated
check "emulated bf16: the log names the backend" sh -c \
    "evo-train --backend emulated --set model.dtype=bf16 --set data.total_steps=1 --set ckpt.enable_save_ckpt=false tiny.ini 2>&1 | grep -q 'emulated bf16'"
within() { # A B TOL [STEPS]: each of the STEPS (50) losses of B within TOL (relative) of A's, not all equal
    /usr/bin/python3 - "$@" <<'EOF'
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l)["loss"] for l in open(sys.argv[2] + "/metrics.jsonl")]
worst = max(abs(x - y) / x for x, y in zip(a, b))
print(f"{sys.argv[2]} vs {sys.argv[1]}: worst step {worst:.4f}", file=sys.stderr)
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 50
sys.exit(not (len(a) == len(b) == steps and 0 < worst <= float(sys.argv[3])))
EOF
}
check "emulated bf16: every step's loss within 2% of fp32's, and rounded (not equal)" within f32 b16 0.02
check "emulated bf16: no step skipped at the default loss scale" sh -c "! grep -q '\"applied\":false' b16/metrics.jsonl"
last=$(field b16/metrics.jsonl loss | tail -1)
check "emulated bf16: the loss falls from 8.99 to below 7.5 ($last)" awk -v l="$last" 'BEGIN {exit !(l < 7.5)}'
check "emulated bf16: a second run gives the same bits" run b16again bf16 --backend emulated
check "emulated bf16: deterministic weights" cmp b16/50/model_tp0_pp0.evo b16again/50/model_tp0_pp0.evo
check "emulated bf16: checkpoints hold the fp32 master weights (not rounded: low mantissa bits set)" \
    /usr/bin/python3 -c '
import struct, sys
b = open("b16/50/model_tp0_pp0.evo", "rb").read()
w = struct.unpack("<%dI" % (len(b) // 4), b[: len(b) // 4 * 4])
sys.exit(not sum(1 for u in w if u & 0xFFFF) > len(w) // 2)'

# The stop file stops at 25; a new process resumes: the working copy comes
# from the loaded master weights, so the result is the straight run's.
echo 25 >stop
check "emulated bf16: stopped at step 25" run b16r bf16 --backend emulated --set ckpt.stop_file_path=stop
echo 0 >stop
check "emulated bf16: resumed to 50" run b16r bf16 --backend emulated --set ckpt.stop_file_path=stop
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo; do
    check "emulated bf16: resumed = straight, $f at step 50 byte for byte" cmp b16/50/$f b16r/50/$f
done

# --- fp16 and the loss scaler -------------------------------------------------
# At the default scale (2^16) the tiny model's gradients fit fp16.
check "emulated fp16: 50 steps" run h16 fp16 --backend emulated
check "emulated fp16: every step's loss within 2% of fp32's" within f32 h16 0.02
# At 2^24 the logits' gradient (scale / 128 tokens) is past fp16's 65504:
# inf, the step skipped; from the second overflow (hysteresis 2) each one
# halves the scale, until it fits: 2^24 2^23 2^22 skipped, 2^21 applied.
check "emulated fp16, loss scale 2^24: 50 batches" run h16hi fp16 --backend emulated \
    --set grad_scaler.fp16.initial_scale=16777216
check "emulated fp16, loss scale 2^24: skips 4 batches as the scale backs off to 2^21, then trains" \
    test "$(head -5 h16hi/metrics.jsonl | /usr/bin/python3 -c '
import json, sys
print(" ".join("%s:%d" % (j["applied"], j["loss_scale"]) for j in map(json.loads, sys.stdin)))')" = \
    "False:16777216 False:8388608 False:4194304 False:2097152 True:2097152"
check "the CPU backend (fp32) at 2^24: nothing overflows" sh -c \
    "evo-train -q --backend cpu --set model.dtype=fp16 --set grad_scaler.fp16.initial_scale=16777216 \
     --set data.total_steps=5 --set ckpt.enable_save_ckpt=false --metrics - tiny.ini | grep -c '\"applied\":true' | grep -qx 5"

# --- ZeRO-1: the ranks that did not update a tensor take its new master
# weights by broadcast and round their working copy from it -------------------
export OMP_NUM_THREADS=1
common=(--backend emulated --set model.dtype=bf16 --set data.total_steps=10 --set lr_scheduler.total_steps=10
    --set ckpt.checkpoint_every=10 --set data.micro_num=1)
check "emulated bf16, dp 2 zero1 1: 10 steps" ranks 2 evo-train -q "${common[@]}" --set parallel.zero1=1 \
    --set ckpt.save_ckpt_folder=dp tiny.ini
check "emulated bf16, dp 2 zero1 2: 10 steps" ranks 2 evo-train -q "${common[@]}" --set parallel.zero1=2 \
    --set ckpt.save_ckpt_folder=z2 tiny.ini
check "emulated bf16: zero1 2 = zero1 1, weights bit for bit" cmp dp/10/model_tp0_pp0.evo z2/10/model_tp0_pp0.evo
# (the gradient norm's double sum is grouped by owner, so only the losses)
check "emulated bf16: zero1 2 = zero1 1, the losses" cmp <(field dp/metrics.jsonl loss) <(field z2/metrics.jsonl loss)
# ZeRO-2 (the fp32 gradients cut as the masters): one row per rank, so
# every sum is ZeRO-1's and every file the same bits
check "emulated bf16, dp 2 zero1 2 shard_grads: 10 steps" ranks 2 evo-train -q "${common[@]}" --set parallel.zero1=2 \
    --set parallel.zero1.shard_grads=true --set ckpt.save_ckpt_folder=zero2 tiny.ini
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo optimizer_tp0_pp0_zo1.evo; do
    check "emulated bf16: ZeRO-2 = ZeRO-1, $f bit for bit" cmp "z2/10/$f" "zero2/10/$f"
done

# --- bf16 between ranks: activations travel and are summed in bf16 (the
# MPI comm's 16-bit sums, as NCCL's) -------------------------------------------
# A pipeline sends stage 0's bf16 output as it is: the same bits as one rank.
check "emulated bf16, 1 rank: 10 steps" evo-train -q "${common[@]}" --set data.micro_num=4 \
    --set ckpt.save_ckpt_folder=one tiny.ini
check "emulated bf16, pp 2: 10 steps" ranks 2 evo-train -q "${common[@]}" --set data.micro_num=4 \
    --set parallel.pipeline.size=2 --set ckpt.save_ckpt_folder=pp2 tiny.ini
check "emulated bf16: pp 2 = 1 rank, the losses bit for bit" cmp <(field one/metrics.jsonl loss) \
    <(field pp2/metrics.jsonl loss)
# Tensor parallelism sums partial outputs in bf16 (rounded once more than
# on one rank): within 2% of fp32 on the same layout, and not equal to it.
for mode in mtp msp; do
    check "fp32, tp 2 $mode: 10 steps" ranks 2 evo-train -q "${common[@]}" --backend cpu --set model.dtype=fp32 \
        --set parallel.tensor.size=2 --set parallel.tensor.mode=$mode --set ckpt.save_ckpt_folder=t32$mode tiny.ini
    check "emulated bf16, tp 2 $mode: 10 steps" ranks 2 evo-train -q "${common[@]}" \
        --set parallel.tensor.size=2 --set parallel.tensor.mode=$mode --set ckpt.save_ckpt_folder=t16$mode tiny.ini
    check "emulated bf16, tp 2 $mode: every step within 2% of fp32's" within t32$mode t16$mode 0.02 10
done
