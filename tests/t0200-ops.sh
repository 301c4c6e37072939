#!/usr/bin/env bash
# The compute ops of evo-train's CPU backend (src/lib/compute/backend*.c) against
# PyTorch: tests/c/op-check runs every op forward and backward on fixed
# random inputs and writes inputs and outputs; tests/ref/torch-ops.py
# recomputes them with autograd and compares, one line per tensor.
. "$(dirname "$0")/lib.sh"
opcheck=$EVO_TESTBIN/op-check
small=
[ -n "${EVO_SANITIZED:-}" ] && small=-s
# Two threads whatever the machine, so the parallel paths run and the
# determinism check below means the same thing everywhere.
export OMP_NUM_THREADS=2
mkdir a b

check "op-check runs every op" "$opcheck" $small a
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    fail "PyTorch importable" "/usr/bin/python3 cannot import torch: run scripts/install-deps (python3-torch)"
    exit 0
fi
/usr/bin/python3 "$EVO_ROOT/tests/ref/torch-ops.py" a >torch.log 2>&1
rc=$?
while read -r status what; do
    case $status in
    ok) pass "$what" ;;
    FAIL) fail "$what" ;;
    esac
done <torch.log
# A crash of the script itself (a missing file, a torch error) fails here.
grep -q '^FAIL ' torch.log || [ $rc -eq 0 ] || fail "torch-ops.py completes" "$(tail -5 torch.log)"

# No reduction depends on thread timing: a second run is bit-identical.
check "op-check run twice gives identical bits" sh -c \
    "'$opcheck' $small b && diff -r a b"

# The emulated bf16 backend (backend_emulated.c), what scripts/gpu-check
# holds a GPU's bf16 ops to: its buffers of activations are bf16, every op
# reads them into fp32 and rounds what it writes. Against the fp32 ops on
# the unrounded inputs it differs by the inputs' rounding (2^-9 relative)
# and the outputs': within 1.1e-2 for every tensor but the gradients of the
# nearly one-hot attention_mqa (scores with a standard deviation of 40,
# whose rounding moves the softmax's weights: 4.3e-2). A wrong op is off by
# far more (order 1). Twice: the same bits.
mkdir e16 e16b
check "op-check -b emulated-bf16 runs every op" "$opcheck" $small -b emulated-bf16 e16
check "emulated bf16 ops within 5e-2 relative L2 of the fp32 ones" sh -c \
    "'$EVO_TESTBIN/op-compare' -t 5e-2 a e16 >e16.cmp"
check "emulated bf16 ops twice give identical bits" sh -c "'$opcheck' $small -b emulated-bf16 e16b && diff -r e16 e16b"
