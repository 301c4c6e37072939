#!/usr/bin/python3
"""Recomputes what tests/c/op-check wrote into DIR with PyTorch (autograd in
float64; AdamW with torch.optim.AdamW in float32, as training runs it) and
prints one line per comparison:  ok|FAIL <case> <what> err=<e> tol=<t>
err is the max abs difference relative to the max abs of the reference.
Usage: torch-ops.py DIR   (Debian's python3-torch, /usr/bin/python3)"""
import json
import math
import os
import sys

import numpy as np
import torch

torch.set_num_threads(1)
DIR = sys.argv[1]
FWD, GRAD = 1e-5, 1e-4
EXT = {"f32": np.float32, "i32": np.int32, "u16": np.int16, "f64": np.float64}
failed = 0


def load(case, name):
    for ext, dt in EXT.items():
        path = os.path.join(DIR, f"{case}.{name}.{ext}")
        if os.path.exists(path):
            return torch.from_numpy(np.fromfile(path, dtype=dt))
    raise FileNotFoundError(f"{case}.{name}")


def f64(case, name, *shape, grad=False):
    t = load(case, name).double().reshape(*shape)
    return t.requires_grad_(grad)


def report(ok, case, what, msg):
    global failed
    failed += not ok
    print(f"{'ok' if ok else 'FAIL'} {case} {what} {msg}")


def compare(case, what, got, ref, tol):
    ref = ref.detach().double().reshape(-1)
    got = got.double().reshape(-1)
    scale = max(ref.abs().max().item(), 1e-30)
    err = (got - ref).abs().max().item() / scale
    report(err < tol, case, what, f"err={err:.2e} tol={tol:.0e}")


def embedding(c, m):
    T, V, C = m["T"], m["V"], m["C"]
    ids = load(c, "ids").long()
    table = f64(c, "table", V, C, grad=True)
    out = table[ids]
    out.backward(f64(c, "dout", T, C))
    compare(c, "out", load(c, "out"), out, FWD)
    compare(c, "dtable", load(c, "dtable"), f64(c, "dtable0", V, C) + table.grad, GRAD)


def matmul(c, m):
    T, C, OC = m["T"], m["C"], m["OC"]
    inp, W, b = f64(c, "inp", T, C, grad=True), f64(c, "W", OC, C, grad=True), f64(c, "b", OC, grad=True)
    out = torch.nn.functional.linear(inp, W, b)
    out.backward(f64(c, "dout", T, OC))
    compare(c, "out", load(c, "out"), out, FWD)
    compare(c, "dinp", load(c, "dinp"), inp.grad, GRAD)
    compare(c, "dinp (accumulated)", load(c, "dinp_acc"), f64(c, "dinp0", T, C) + inp.grad, GRAD)
    compare(c, "dW (accumulated)", load(c, "dW"), f64(c, "dW0", OC, C) + W.grad, GRAD)
    compare(c, "db (accumulated)", load(c, "db"), f64(c, "db0", OC) + b.grad, GRAD)


def rmsnorm(c, m):
    T, C, eps = m["T"], m["C"], m["eps"]
    x, w = f64(c, "inp", T, C, grad=True), f64(c, "w", C, grad=True)
    rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    out = w * (x * rstd)
    out.backward(f64(c, "dout", T, C))
    compare(c, "out", load(c, "out"), out, FWD)
    compare(c, "rstd", load(c, "rstd"), rstd, FWD)
    compare(c, "dinp", load(c, "dinp"), x.grad, GRAD)
    compare(c, "dinp (accumulated)", load(c, "dinp_acc"), f64(c, "dinp0", T, C) + x.grad, GRAD)
    compare(c, "dw (accumulated)", load(c, "dw"), f64(c, "dw0", C) + w.grad, GRAD)


def rope(c, m):
    """HF LLaMA's apply_rotary_pos_emb (rotate_half), positions per token."""
    T, H, hd, base = m["T"], m["H"], m["hd"], m["base"]
    pos = load(c, "pos").double()
    inv_freq = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = pos[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None, :]
    x = f64(c, "inp", T, H, hd, grad=True)
    rot = torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), dim=-1)
    out = x * emb.cos() + rot * emb.sin()
    out.backward(f64(c, "dout", T, H, hd))
    compare(c, "out", load(c, "out"), out, FWD)
    compare(c, "dinp", load(c, "dinp"), x.grad, GRAD)


def attention(c, m):
    """Each segment alone through plain causal softmax attention, the results
    concatenated: the packed kernel must never look across a segment."""
    T, H, KVH, hd, cu = m["T"], m["H"], m["KVH"], m["hd"], m["cu_seqlens"]
    q = f64(c, "q", T, H, hd, grad=True)
    k, v = f64(c, "k", T, KVH, hd, grad=True), f64(c, "v", T, KVH, hd, grad=True)
    outs, lses = [], []
    for s0, s1 in zip(cu[:-1], cu[1:]):
        L = s1 - s0
        qs = q[s0:s1].transpose(0, 1)                                   # [H,L,hd]
        ks = k[s0:s1].repeat_interleave(H // KVH, dim=1).transpose(0, 1)  # head h -> kv h/(H/KVH)
        vs = v[s0:s1].repeat_interleave(H // KVH, dim=1).transpose(0, 1)
        S = qs @ ks.transpose(1, 2) / math.sqrt(hd)
        S = S.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
        lses.append(torch.logsumexp(S, -1).transpose(0, 1))            # [L,H]
        outs.append((torch.softmax(S, -1) @ vs).transpose(0, 1))        # [L,H,hd]
    out, lse = torch.cat(outs), torch.cat(lses)
    out.backward(f64(c, "dout", T, H, hd))
    # The blocked kernel the backend uses, then the plain reference it is
    # checked against (ref_*), both against float64.
    for kernel, p in (("blocked", ""), ("reference", "ref_")):
        what = f"{kernel} out ({len(cu) - 1} segments, T={T} H={H} KVH={KVH} hd={hd})"
        compare(c, what, load(c, p + "out"), out, FWD)
        compare(c, f"{kernel} lse", load(c, p + "lse"), lse, FWD)
        compare(c, f"{kernel} dq", load(c, p + "dq"), q.grad, GRAD)
        compare(c, f"{kernel} dk", load(c, p + "dk"), k.grad, GRAD)
        compare(c, f"{kernel} dv", load(c, p + "dv"), v.grad, GRAD)


def swiglu(c, m):
    n = m["n"]
    gate, up = f64(c, "gate", n, grad=True), f64(c, "up", n, grad=True)
    out = torch.nn.functional.silu(gate) * up
    out.backward(f64(c, "dout", n))
    compare(c, "out", load(c, "out"), out, FWD)
    compare(c, "dgate", load(c, "dgate"), gate.grad, GRAD)
    compare(c, "dup", load(c, "dup"), up.grad, GRAD)


def crossentropy(c, m):
    T, V, eps = m["T"], m["V"], m["eps"]
    logits, labels = f64(c, "logits", T, V, grad=True), load(c, "labels").long()
    losses = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100,
                                               reduction="none", label_smoothing=eps)
    (losses * f64(c, "dloss", T)).sum().backward()
    compare(c, f"losses (eps={eps:g})", load(c, "losses"), losses, FWD)
    compare(c, "dlogits", load(c, "dlogits"), logits.grad, GRAD)


def crossentropy_shards(c, m):
    T, V, S, eps = m["T"], m["V"], m["shards"], m["eps"]
    Vl = V // S
    logits, labels = f64(c, "logits", T, V, grad=True), load(c, "labels").long()
    losses = torch.nn.functional.cross_entropy(logits, labels, ignore_index=-100,
                                               reduction="none", label_smoothing=eps)
    (losses * f64(c, "dloss", T)).sum().backward()
    parts = load(c, "parts").double().reshape(S, 3, T)
    keep = labels != -100
    z = logits.detach()
    for r in range(S):
        cols = z[:, r * Vl:(r + 1) * Vl]
        mine = keep & (labels >= r * Vl) & (labels < (r + 1) * Vl)
        zy = torch.where(mine, z.gather(1, labels.clamp(min=0)[:, None])[:, 0], torch.zeros(T, dtype=z.dtype))
        compare(c, f"shard {r} log-sum-exp", parts[r, 0], torch.where(keep, cols.logsumexp(1), zy * 0), FWD)
        compare(c, f"shard {r} z_y", parts[r, 1], zy, FWD)
        compare(c, f"shard {r} sum z", parts[r, 2], torch.where(keep, cols.sum(1), zy * 0), FWD)
    compare(c, "dlogits of the shards side by side", load(c, "dlogits"), logits.grad, GRAD)


def adamw(c, m):
    n = m["n"]
    p = torch.nn.Parameter(load(c, "p0").clone())
    opt = torch.optim.AdamW([p], lr=m["lr"], betas=(m["beta1"], m["beta2"]), eps=m["eps"],
                            weight_decay=m["wd"])
    for t in range(1, m["steps"] + 1):
        p.grad = load(c, f"g{t}") * m["grad_scale"]
        opt.step()
    st = opt.state[p]
    compare(c, f"p after {m['steps']} steps", load(c, "p"), p, FWD)
    compare(c, "m", load(c, "m"), st["exp_avg"], FWD)
    compare(c, "v", load(c, "v"), st["exp_avg_sq"], FWD)
    report(torch.equal(load(c, "work"), load(c, "p")), c, "working copy written by the step (fp32: p)", "exact")


def sqnorm(c, m):
    x = load(c, "x").double()
    acc = load(c, "acc")
    ref = m["acc0"] + (x * x).sum().item()
    err = abs(acc[0].item() - ref) / ref
    report(err < 1e-12, c, "sum of squares (accumulated)", f"err={err:.2e} tol=1e-12")
    for i, what in ((1, "inf"), (2, "nan")):
        report(not math.isfinite(acc[i].item()), c, f"non-finite with an {what}", f"acc={acc[i].item()}")


def bits_equal(c, what, got, ref):
    """Bit-exact (got: the int16 bits); NaNs compare by being NaN, as their
    payloads may differ."""
    ref_nan = torch.isnan(ref.float())
    got_nan = torch.isnan(got.view(ref.dtype).float())
    diff = (got != ref.view(torch.int16)) & ~ref_nan
    ok = torch.equal(got_nan, ref_nan) and not bool(diff.any())
    report(ok, c, what, f"{int(diff.sum())} of {len(diff)} differ")


def cast(c, m):
    x = load(c, "x")
    bf, hf = x.to(torch.bfloat16), x.to(torch.float16)
    bits_equal(c, "f32->bf16", load(c, "bf16"), bf)
    bits_equal(c, "f32->f16", load(c, "f16"), hf)
    bits_equal(c, "bf16->f16", load(c, "bf16_f16"), bf.float().to(torch.float16))
    bits_equal(c, "f16->bf16", load(c, "f16_bf16"), hf.float().to(torch.bfloat16))
    for name, ref in (("bf16_f32", bf.float()), ("f16_f32", hf.float())):
        got = load(c, name)
        same = torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(ref, nan=7.0))
        report(same, c, name.replace("_", "->"), "exact" if same else "differs")


def memory(c, m):
    x, y, z = load(c, "x"), load(c, "y"), load(c, "z")
    report(torch.equal(x, y), c, "copy", "exact")
    report(bool((load(c, "f") == m["value"]).all()), c, "fill", f"value {m['value']}")
    report(torch.equal(load(c, "sum"), x + z), c, "add", "exact")
    report(torch.equal(load(c, "fsum"), m["value"] + load(c, "g")), c, "add_f32", "exact")


CASES = {"embedding": embedding, "matmul": matmul, "rmsnorm": rmsnorm, "rope": rope,
         "attention_gqa": attention, "attention_mha": attention, "attention_mqa": attention,
         "attention_gqa128": attention,
         "swiglu": swiglu, "crossentropy": crossentropy, "crossentropy_smooth": crossentropy,
         "crossentropy_shards": crossentropy_shards, "adamw": adamw,
         "sqnorm": sqnorm, "cast": cast, "memory": memory}

for case, fn in CASES.items():
    with open(os.path.join(DIR, case + ".json")) as f:
        fn(case, json.load(f))
sys.exit(1 if failed else 0)
