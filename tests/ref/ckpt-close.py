#!/usr/bin/python3
"""ckpt-close.py A B [TOL]: whether two checkpoints (tp 1, any pipeline
and ZeRO split) hold the same weights and AdamW moments up to a reduction order:
for every tensor,
|a - b| <= TOL |a| in the L2 norm (default 1e-5). A multi-rank run sums
gradients in another order; AdamW turns the sign of a gradient that is
rounding noise (k's bias, whose exact gradient is zero; rare tokens'
embedding rows) into a step of lr either way, so single elements may
differ by that much while the tensor as a whole agrees: the L2 norm,
not the largest element, is the measure. Prints the worst
tensor; exit 1 if any tensor is further apart, or the tensors differ in
names or shapes."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evo_ckpt  # noqa: E402


def tensors(path, kind):
    """The tensors of every KIND*.evo file of a checkpoint: pipeline stages
    and ZeRO's optimizer shards hold whole tensors, so a union merges them,
    by name (an interleaved pipeline's stages hold every other run of
    layers, so no order is the model's)."""
    found = {}
    for name in os.listdir(path):
        if name.startswith(kind) and name.endswith(".evo"):
            found.update(evo_ckpt.read_tensor_file(os.path.join(path, name))[1])
    return found

tol = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-5
worst, worst_name = 0.0, ""
for kind in ("model", "optimizer"):
    ta, tb = tensors(sys.argv[1], kind), tensors(sys.argv[2], kind)
    if sorted(ta) != sorted(tb):
        sys.exit("%s: tensor names differ" % kind)
    for name in ta:
        x, y = ta[name].astype(np.float64), tb[name].astype(np.float64)
        if x.shape != y.shape:
            sys.exit("%s: shapes %s and %s" % (name, x.shape, y.shape))
        scale = np.linalg.norm(x)
        err = np.linalg.norm(x - y) / scale if scale > 0 else np.linalg.norm(y)
        if err > worst:
            worst, worst_name = err, name
print("worst: %s, |a - b| / |a| = %.3g (tolerance %g)" % (worst_name or "none", worst, tol))
sys.exit(0 if worst <= tol else 1)
