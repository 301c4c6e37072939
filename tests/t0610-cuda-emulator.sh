#!/usr/bin/env bash
# The CUDA backend's kernels and host side, run on the CPU emulator
# (kernels/emu, make CUDA=emu; its flavour runs only this script): what
# scripts/gpu-check checks on a GPU, on this machine, on every submission.
# The emulator runs every block's threads as fibers that switch only at
# barriers, with cuBLASLt's GEMMs as plain loops: it proves the kernels'
# indexing, masking, reductions, barriers and the backend's plumbing, not
# the hardware's speed or its own rounding of sums (kernels/emu/README.md).
# - every op against the CPU backend, as gpu-check's step 1 and 4: fp32
#   within 1e-4 relative L2, TF32 within 1e-3, bf16 (the tensor-core
#   attention at head dims 64 and 128, and the plain one) within 1e-2 of
#   the CPU's emulated bf16;
# - barriers: the threads run again in reverse order and give the same
#   bits (a read of another thread's write without a barrier between
#   would see another value); a GPU whose blocks may opt in to 99 KiB of
#   shared memory (sm_86) takes the plain attention at head dim 128;
# - training (gpu-check's steps 2, 3, 4): fp32 losses equal the CPU's to
#   1e-5, two runs and a resumed run give identical checkpoints,
#   recomputation gives the same bits, bf16 at head dim 64 (the tensor-core
#   attention) follows the CPU's emulated bf16 within 1e-2, fp16 skips the
#   steps the CPU's emulated fp16 skips;
# - NCCL (the emulator's, over shared memory, its calls queued on the
#   emulated streams): comm-check's collectives in every group of four
#   layouts, training over it with ZeRO-1, ZeRO-2, tensor parallelism
#   (msp) and interleaved pipeline stages over NCCL's point to point (2 and
#   4 stages), and the comm's watchdog ending a job whose rank was stopped;
# - scripts/sbatch/train-gpu.sbatch under the local Slurm on 2 stand-in
#   GPUs: a rank a GPU, USR1, requeue, resume, the uninterrupted bits.
. "$(dirname "$0")/lib.sh"

case $EVO_BIN in
*/release-cuda-emu/*) ;;
*) exit 0 ;; # another flavour: nothing here to run
esac
check "evo-train --version names the emulator" sh -c "evo-train --version | grep -q 'cuda (on the CPU emulator)'"

ops() { # BACKEND DIR [ENV...]: op-check's files of a backend; DIR ending in -s: its smaller sizes
    local small=
    case $2 in *-s) small=-s ;; esac
    mkdir -p "$2"
    env "${@:3}" "$EVO_TESTBIN/op-check" $small -b "$1" "$2" >"$2.log" 2>&1
}
compare() { # NAME TOL REF DIR: every tensor within TOL (fails when op-check did not run)
    local out
    if out=$("$EVO_TESTBIN/op-compare" -t "$2" "$3" "$4") && ! printf '%s\n' "$out" | grep -q '^FAIL' &&
        [ "$(printf '%s\n' "$out" | grep -c '^ok')" -ge 100 ]; then
        pass "$1 ($(printf '%s\n' "$out" | grep -c '^ok') tensors)"
    else
        fail "$1" "$(printf '%s\n' "$out" | grep -v '^ok' | head -5; tail -3 "$4.log")"
    fi
}
# op-check's sizes for bf16 (the tensor-core attention), its smaller ones
# (-s: still segments across 64-token tiles) for the rest
ops cpu cpu-s
for d in emu16 emu16-s; do ops emulated-bf16 $d; done
ops cuda f32-s; compare "fp32 ops on the emulated GPU = the CPU backend's within 1e-4" 1e-4 cpu-s f32-s
ops cuda-tf32 tf32-s; compare "TF32 GEMMs within 1e-3" 1e-3 cpu-s tf32-s
ops cuda-bf16 b16; compare "bf16 ops (tensor-core attention) within 1e-2 of the emulated bf16" 1e-2 emu16 b16
ops cuda-bf16 b16-s
ops emulated-fp16 emu-f16-s
ops cuda-fp16 f16-s; compare "fp16 ops within 1e-2 of the emulated fp16" 1e-2 emu-f16-s f16-s
ops cuda-bf16 plain-s EVO_CUDA_ATTENTION=plain
compare "bf16 ops, plain attention, within 1e-2 of the emulated bf16" 1e-2 emu16-s plain-s
check "the tensor-core attention ran (its bits differ from the plain kernels')" \
    sh -c '! cmp -s b16-s/attention_gqa128.out.f32 plain-s/attention_gqa128.out.f32'
ops cuda-bf16 rev-s EVO_CUDA_EMULATOR_ORDER=reverse
check "threads in reverse order: the same bits (no read races a barrier misses)" diff -r b16-s rev-s
ops cuda-bf16 sm86-s EVO_CUDA_EMULATOR_SMEM=101376
check "99 KiB of shared memory (sm_86): head dim 128 takes the plain attention, 64 the tensor cores" sh -c \
    'cmp plain-s/attention_gqa128.out.f32 sm86-s/attention_gqa128.out.f32 &&
     cmp b16-s/attention_mha.out.f32 sm86-s/attention_mha.out.f32'
# ... and the checks above would see a kernel without its barriers
catches() { # NAME BARRIER: with the barrier ignored, some attention tensors fail
    ops cuda-bf16 "no-$2-s" EVO_CUDA_EMULATOR_IGNORE="$2"
    check "$1" sh -c "$EVO_TESTBIN/op-compare -t 1e-2 emu16-s no-$2-s | grep -q '^FAIL attention'"
}
catches "without __syncthreads the attention fails: the check sees a missing block barrier" syncthreads
catches "without __syncwarp the attention fails: the check sees a missing warp barrier" syncwarp

# Training: tiny.ini's model with 2 heads (head dim 16: the plain
# attention, a warp a head and token, half as many as with 4) for 4 steps.
tiny_training
short=(--set data.total_steps=4 --set ckpt.checkpoint_every=2 --set model.num_attention_heads=2)
train() { # NAME BACKEND ARGS...
    local name=$1 be=$2
    shift 2
    evo-train -q --backend "$be" --metrics "$name.jsonl" --set ckpt.save_ckpt_folder="$name" "${short[@]}" "$@" \
        tiny.ini 2>"$name.err"
}
losses() { field "$1.jsonl" loss; }
within() { # A B TOL: every step's loss of run B within TOL relative of A's
    paste <(losses "$1") <(losses "$2") |
        awk -v tol="$3" '{d = ($2 - $1) / $1; d = d < 0 ? -d : d; if (d > w) w = d; n++}
            END {printf "%d steps, worst %.1e\n", n, w; exit !(n == 4 && w <= tol)}'
}
same_ckpt() { # A B [STEP]: the two runs' checkpoints of STEP (4) identical
    cmp "$1/${3:-4}/model_tp0_pp0.evo" "$2/${3:-4}/model_tp0_pp0.evo" &&
        cmp "$1/${3:-4}/optimizer_tp0_pp0_zo0.evo" "$2/${3:-4}/optimizer_tp0_pp0_zo0.evo"
}
train cpu cpu
train gpu cuda
check "fp32 training: every loss within 1e-5 of the CPU backend's" within cpu gpu 1e-5
train gpu2 cuda
check "two runs: identical checkpoints" same_ckpt gpu gpu2
train half cuda --set data.total_steps=2 --set lr_scheduler.total_steps=4 && train half cuda
resumed() { same_ckpt gpu half && evo-ckpt verify half/4 >/dev/null; }
check "2 steps, then resumed to 4: the uninterrupted run's bits, and it verifies" resumed
train recompute cuda --set model.checkpoint=1
check "recomputation (model.checkpoint): the same bits" same_ckpt gpu recompute
# bf16 at head dim 64: the tensor-core attention in training
wide=(--set model.dtype=bf16 --set model.hidden_size=128 --set model.num_attention_heads=2)
train emu16 emulated "${wide[@]}"
train gpu16 cuda "${wide[@]}"
check "bf16 training, head dim 64: every loss within 1e-2 of the CPU's emulated bf16" within emu16 gpu16 1e-2
# fp16 and the dynamic loss scaler: from a scale of 3e6, steps 1, 3 and 4
# overflow and are skipped (the GPU's inf/NaN test), step 2 is applied,
# as on the CPU's emulated fp16
half=(--set model.dtype=fp16 --set model.hidden_size=128 --set model.num_attention_heads=2
    --set grad_scaler.fp16.initial_scale=3e6 --set grad_scaler.hysteresis=1)
train emu-f16 emulated "${half[@]}"
train gpu-f16 cuda "${half[@]}"
same_fp16() { [ "$(field gpu-f16.jsonl skipped_nonfinite | tr '\n' ' ')" = "1 1 2 3 " ] &&
    [ "$(field emu-f16.jsonl skipped_nonfinite)" = "$(field gpu-f16.jsonl skipped_nonfinite)" ] &&
    within emu-f16 gpu-f16 1e-2; }
check "fp16 training: the same steps skipped, every loss within 1e-2 of the CPU's emulated fp16" same_fp16

# NCCL: the NCCL comm (comm_nccl.c: ids through PMIx, one communicator a
# group, the collectives on the stream, the watchdog thread) over the
# emulator's libnccl.so.2, two ranks under srun, as gpu-check's step 6
use_local_slurm
export OMPI_MCA_mca_base_component_disable_dlclose=1
for sizes in "1 1 -1" "2 1 1" "1 2 1" "1 1 2"; do
    check "NCCL comm-check on emulated device memory (tp pp zero1 $sizes, srun -n 2)" \
        ranks 2 "$EVO_TESTBIN/comm-check" $sizes cuda nccl
done
over_nccl() { # NAME N ARGS...: the layout on emulated GPUs over NCCL against CPU ranks over Open MPI
    local name=$1 n=$2
    shift 2
    ranks "$n" evo-train -q --backend cpu --comm mpi --metrics "mpi-$name.jsonl" \
        --set ckpt.save_ckpt_folder="mpi-$name" "${short[@]}" "$@" tiny.ini
    ranks "$n" evo-train -q --backend cuda --comm nccl --metrics "nccl-$name.jsonl" \
        --set ckpt.save_ckpt_folder="nccl-$name" "${short[@]}" "$@" tiny.ini 2>"nccl-$name.err"
    check "$name over NCCL (srun -n $n): every loss within 1e-5 of the CPU ranks' over Open MPI" \
        within "mpi-$name" "nccl-$name" 1e-5
}
over_nccl "dp 2 zero1 2" 2 --set data.micro_num=2 --set parallel.zero1=2
over_nccl "dp 2 zero1 2 shard_grads (ZeRO-2)" 2 --set data.micro_num=2 --set parallel.zero1=2 \
    --set parallel.zero1.shard_grads=true
over_nccl "tp 2 msp" 2 --set parallel.tensor.size=2 --set parallel.tensor.mode=msp --set data.micro_num=2
# the pipeline's sends over NCCL's channels: with 2 stages the next stage
# is the previous one; with 4, the interleaved schedule wraps from the last
# stage to the first
over_nccl "pp 2 interleaved" 2 --set model.num_layers=4 --set model.num_chunks=2 --set parallel.pipeline.size=2 \
    --set data.micro_num=4
over_nccl "pp 4 interleaved" 4 --set model.num_layers=8 --set model.num_chunks=2 --set parallel.pipeline.size=4 \
    --set data.micro_num=4

# The comm's watchdog: a rank stopped (SIGSTOP, a hung node) leaves its
# peer's collective pending on the emulated stream; the peer's watchdog
# ends the job within --comm-timeout, saying which collective waited.
long=(--set data.total_steps=8 --set ckpt.checkpoint_every=2 --set data.micro_num=2 --set model.num_attention_heads=2)
signal_rank STOP stopped stopped/2/2.step ranks 2 evo-train -q --backend cuda --comm nccl --comm-timeout 10 \
    "${long[@]}" --set data.total_steps=100000 --set ckpt.save_ckpt_folder="$T/stopped" tiny.ini
check "SIGSTOP to one GPU rank: the job ends non-zero (exit $rc) within 40 s of it ($took s)" \
    test "$rc" != 0 -a "$took" -lt 40
check "SIGSTOP: the NCCL watchdog says which collective waited" grep -Eq \
    'rank [01]: .* over the (data|world|zero1) group \(2 ranks\) is not done 10 s after it was started' stopped.err

# train-gpu.sbatch as a user submits it, on 2 of the local Slurm's 8
# stand-in GPUs: --gpus-per-task=1 gives each rank its own through
# CUDA_VISIBLE_DEVICES, which the emulated runtime reads as the driver
# does, and the emulated NCCL refuses two ranks on one GPU, as NCCL does.
# USR1 in the middle: the ranks save, exit 75, the job requeues itself and
# resumes on its GPUs, and ends with the uninterrupted run's bits.
if [ -z "${SLURM_CONF:-}" ]; then
    if [ -n "${CI:-}" ]; then fail "train-gpu.sbatch needs the local Slurm in CI"; else echo "# no Slurm: train-gpu.sbatch skipped"; fi
    exit 0
fi
check_fails "two ranks that see one GPU: NCCL refuses them" 1 'Duplicate GPU detected' env NCCL_DEBUG=WARN \
    timeout 300 srun --mpi=pmix -n 2 env CUDA_VISIBLE_DEVICES=1 evo-train -q --backend cuda tiny.ini
check "the uninterrupted run on 2 GPUs (srun --gpus-per-task=1)" timeout 300 srun --mpi=pmix -n 2 --gpus-per-task=1 \
    evo-train -q --backend cuda "${long[@]}" --set ckpt.save_ckpt_folder=ref tiny.ini
export CONFIG=tiny.ini SETTINGS="${long[*]} --set ckpt.save_ckpt_folder=usr1"
job=$(sbatch --parsable --export=ALL --gpus-per-node=2 --ntasks-per-node=2 --cpus-per-task=1 \
    "$EVO_ROOT/scripts/sbatch/train-gpu.sbatch")
wait_for usr1/2/2.step
scancel --signal=USR1 "$job"
check "train-gpu.sbatch, USR1: the job requeued itself, resumed and completed" completed "$job"
check "train-gpu.sbatch: it ran twice (Restarts=$(restarts "$job"))" test "$(restarts "$job")" = 1
log=evo-train-$job.log
check "train-gpu.sbatch: on the emulated GPUs, over NCCL" sh -c "grep -q 'backend cuda (GPU 0: evo CUDA emulator' $log &&
    grep -q 'comm nccl' $log && grep -q 'resuming from usr1/' $log"
check "train-gpu.sbatch: = the uninterrupted run, bit for bit" same_ckpt ref usr1 8
