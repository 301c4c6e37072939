#!/usr/bin/env bash
# The CUDA backend's host side, tested without a GPU (the GPU itself:
# scripts/gpu-check):
# - the bit-level fp16/bf16 roundings the cast kernel shares with the host
#   (tests/c/dtype-check) and the GEMM plans handed to cuBLASLt
#   (tests/c/gemm-plan-check), in every build;
# - a build without CUDA refuses --backend cuda;
# - the CUDA build (make CUDA=1) on a machine without a GPU: --backend
#   cuda trains on the CPU with one line saying so, to the same bits as
#   the CPU-only build; op-check -b cuda fails with the reason.
. "$(dirname "$0")/lib.sh"

check "fp16/bf16 bit roundings equal the compiler's _Float16" "$EVO_TESTBIN/dtype-check"
out=$("$EVO_TESTBIN/gemm-plan-check" 2>&1)
rc=$?
n=$(printf '%s\n' "$out" | grep -c '^ok ')
if [ $rc -eq 0 ] && [ "$n" -eq 15 ]; then
    pass "GEMM plans equal the CPU matmul (5 shapes x forward, dinp, dweight)"
else
    fail "GEMM plans equal the CPU matmul (5 shapes x forward, dinp, dweight)" "$out"
fi

tiny_training
export OMP_NUM_THREADS=2
check_fails "--backend nope: usage" 2 'backend wants cpu, cuda or auto' evo-train --backend nope tiny.ini
if ! evo-train --version | grep -q 'backends: cpu, cuda'; then
    check_fails "a build without CUDA refuses --backend cuda" 1 'built without CUDA \(make CUDA=1\)' \
        evo-train -q --backend cuda --set ckpt.save_ckpt_folder=a tiny.ini
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

# Many ranks stay on the CPU until the NCCL comm exists: auto picks it,
# and cuda is refused with the reason (srun, the local Slurm).
use_local_slurm
check "2 ranks, --backend auto: the CPU" ranks 2 evo-train -q --set ckpt.save_ckpt_folder=d \
    --set data.total_steps=2 --set ckpt.checkpoint_every=0 --set data.micro_num=2 tiny.ini
out=$(ranks 2 evo-train -q --backend cuda --set ckpt.save_ckpt_folder=e --set data.total_steps=2 tiny.ini 2>&1)
if printf '%s' "$out" | grep -q 'GPUs take one rank for now'; then
    pass "2 ranks, --backend cuda: refused until the NCCL comm"
else
    fail "2 ranks, --backend cuda: refused until the NCCL comm" "$out"
fi
