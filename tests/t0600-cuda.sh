#!/usr/bin/env bash
# The CUDA backend's host side, tested without a GPU (the GPU itself:
# scripts/gpu-check):
# - the bit-level fp16/bf16 roundings the cast kernel shares with the host
#   (tests/c/dtype-check) and the GEMM plans handed to cuBLASLt
#   (tests/c/gemm-plan-check), the tensor-core attention's shapes, shared
#   memory and walk over tiles (tests/c/attention-plan-check), in every
#   build;
# - the device-memory contract (backend.h): with --backend guarded the CPU
#   backend's memory is unreadable outside its ops, so any host access
#   elsewhere crashes, and the comms stage it as a GPU's; one rank and the
#   multi-rank layouts give the plain CPU run's bits;
# - a build without CUDA refuses --backend cuda;
# - the CUDA build (make CUDA=1) on a machine without a GPU: --backend
#   cuda trains on the CPU with one line saying so, to the same bits as
#   the CPU-only build; op-check -b cuda fails with the reason.
. "$(dirname "$0")/lib.sh"

check "fp16/bf16 bit roundings equal the compiler's _Float16" "$EVO_TESTBIN/dtype-check"
all_ok() { # NAME OK_LINES PROGRAM: the program passes with that many "ok" lines
    local out rc
    out=$("$3" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && [ "$(printf '%s\n' "$out" | grep -c '^ok ')" -eq "$2" ]; then
        pass "$1"
    else
        fail "$1" "$out"
    fi
}
all_ok "GEMM plans equal the CPU matmul (5 shapes x forward, dinp, dweight)" 15 "$EVO_TESTBIN/gemm-plan-check"
all_ok "tiled attention: its shapes, 6 shared-memory layouts and where they fit, and its walk over tiles = the reference (3 cases, fp32 and bf16 P)" \
    14 "$EVO_TESTBIN/attention-plan-check"

tiny_training
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# Open MPI keeps allocations for the life of the process (t0500-dist.sh).
export LSAN_OPTIONS=suppressions=$EVO_ROOT/tests/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0
export OMPI_MCA_mca_base_component_disable_dlclose=1
check_fails "--backend nope: usage" 2 'backend wants cpu, cuda, auto, guarded or emulated' evo-train --backend nope tiny.ini
check_fails "--comm nope: usage" 2 'comm wants nccl, mpi or auto' evo-train --comm nope tiny.ini

# guarded: train, save, validate, resume, as one rank and over the layouts
# whose comms move backend memory (staged through the host), against the
# same runs on the plain CPU backend.
use_local_slurm
short=(--set data.total_steps=6 --set ckpt.checkpoint_every=3 --set data.valid_folder=valid.pack
    --set data.valid_every=3)
same_ckpt() { # A B: every file of two step-6 checkpoints, but for the job lines of state.json
    local f
    for f in "$1"/6/*.evo; do cmp "$f" "$2/6/${f##*/}" || return 1; done
    same_run "$1/6/state.json" "$2/6/state.json"
}
evo-train -q "${short[@]}" --set data.total_steps=3 --set lr_scheduler.total_steps=6 --backend guarded --set ckpt.save_ckpt_folder=g1 tiny.ini &&
    evo-train -q "${short[@]}" --backend guarded --set ckpt.save_ckpt_folder=g1 tiny.ini
evo-train -q "${short[@]}" --set ckpt.save_ckpt_folder=c1 tiny.ini
check "guarded, one rank: 3 steps, resumed to 6, validation: the CPU run's bits" same_ckpt c1 g1
guarded_layout() { # NAME N ARGS...
    local name=$1 n=$2
    shift 2
    ranks "$n" evo-train -q "${short[@]}" "$@" --set ckpt.save_ckpt_folder="c-$name" tiny.ini
    ranks "$n" evo-train -q "${short[@]}" "$@" --backend guarded --set ckpt.save_ckpt_folder="g-$name" tiny.ini
    check "guarded, $name (srun -n $n): the CPU run's bits" same_ckpt "c-$name" "g-$name"
}
guarded_layout "dp 2 zero1 2" 2 --set parallel.zero1=2 --set data.micro_num=2
guarded_layout "pp 2 interleaved" 2 --set model.num_layers=4 --set model.num_chunks=2 \
    --set parallel.pipeline.size=2 --set data.micro_num=4
guarded_layout "tp 2 msp" 2 --set parallel.tensor.size=2 --set parallel.tensor.mode=msp --set data.micro_num=4
if ! evo-train --version | grep -q 'backends: cpu, cuda'; then
    check_fails "a build without CUDA refuses --backend cuda" 1 'built without CUDA \(make CUDA=1\)' \
        evo-train -q --backend cuda --set ckpt.save_ckpt_folder=a tiny.ini
    check_fails "a build without CUDA refuses --comm nccl (srun -n 2)" 1 'no NCCL comm \(build with make CUDA=1\)' \
        ranks 2 evo-train -q --comm nccl --set ckpt.save_ckpt_folder=a --set data.micro_num=2 tiny.ini
    exit 0
fi

# The CUDA build, here without a GPU. (CI machines have the toolkit and no
# GPU; on a GPU node this part is scripts/gpu-check's.)
if nvidia-smi -L >/dev/null 2>&1; then
    pass "a GPU is visible: the no-GPU fallback is not tested here (scripts/gpu-check covers the GPU)"
    exit 0
fi
cpu_train=$EVO_ROOT/bin/evo-train
evo-train --backend cuda --set ckpt.save_ckpt_folder=a --set data.total_steps=6 --set ckpt.checkpoint_every=6 \
    tiny.ini 2>a.err
rc=$?
n=$(grep -c 'using the CPU backend' a.err)
if [ $rc -eq 0 ] && [ "$n" -eq 1 ] && grep -q 'no CUDA device' a.err; then
    pass "--backend cuda without a GPU: trains on the CPU, one line says so"
else
    fail "--backend cuda without a GPU: trains on the CPU, one line says so" "rc $rc: $(cat a.err)"
fi
check "--backend auto without a GPU: the CPU, silently" sh -c \
    "evo-train -q --set ckpt.save_ckpt_folder=b --set data.total_steps=6 --set ckpt.checkpoint_every=6 tiny.ini 2>b.err && ! grep -q CUDA b.err"
"$cpu_train" -q --set ckpt.save_ckpt_folder=c --set data.total_steps=6 --set ckpt.checkpoint_every=6 tiny.ini
check "the CUDA build on the CPU gives the CPU-only build's bits" sh -c \
    "cmp a/6/model_tp0_pp0.evo c/6/model_tp0_pp0.evo && cmp a/6/optimizer_tp0_pp0_zo0.evo c/6/optimizer_tp0_pp0_zo0.evo"
check_fails "op-check -b cuda without a GPU names the reason" 1 'no CUDA device' "$EVO_TESTBIN/op-check" -b cuda ops
check_fails "op-check -b cuda-bf16 without a GPU names the reason" 1 'no CUDA device' \
    "$EVO_TESTBIN/op-check" -b cuda-bf16 ops
check_fails "op-check -b with an unknown backend: usage" 2 'emulated-bf16' "$EVO_TESTBIN/op-check" -b cuda-fp8 ops
# A bf16 config asks the GPU for bf16; without one the CPU trains it (fp32), as any config.
check "--backend cuda, model.dtype bf16, without a GPU: trains on the CPU" sh -c \
    "evo-train -q --backend cuda --set model.dtype=bf16 --set ckpt.enable_save_ckpt=false --set data.total_steps=2 \
     tiny.ini 2>&1 | grep -q 'using the CPU backend'"

check_fails "--comm nccl without a GPU: refused, the NCCL comm needs the CUDA backend (srun -n 2)" 1 \
    'the NCCL comm needs the CUDA backend' \
    ranks 2 evo-train -q --comm nccl --set ckpt.save_ckpt_folder=n --set data.micro_num=2 tiny.ini

# Many ranks: each finds no GPU and says so once (rank 0).
out=$(ranks 2 evo-train -q --backend cuda --set ckpt.save_ckpt_folder=e --set data.total_steps=2 \
    --set data.micro_num=2 tiny.ini 2>&1)
if [ "$(printf '%s\n' "$out" | grep -c 'using the CPU backend')" -eq 1 ]; then
    pass "2 ranks, --backend cuda without a GPU: the CPU, one line"
else
    fail "2 ranks, --backend cuda without a GPU: the CPU, one line" "$out"
fi
