#!/usr/bin/python3
"""Recomputes what tests/c/model-check wrote into DIR with the PyTorch
model of torch_llama.py (HF Transformers' LLaMA, causal attention inside
each segment of cu_seqlens, q/k/v/o biases when present), in
float64 autograd, and prints one line per comparison like torch-ops.py:
  ok|FAIL <what> err=<e> tol=<t>
err is the max abs difference relative to the max abs of the reference.
Usage: torch-model.py DIR [--init-loss]  (the second also checks that the
loss at init is ln(vocab) within 0.1)"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from torch_llama import Model

torch.set_num_threads(1)
DIR = sys.argv[1]
# A segment alone runs sgemms of other heights, whose float rounding differs
# from the packed row's: equal to float precision, not bit for bit.
LOGITS, GRAD, LOSS, ALONE = 1e-5, 1e-4, 1e-6, 1e-5
failed = 0
cfg = json.load(open(os.path.join(DIR, "index.json")))


def load(name, dt):
    return torch.from_numpy(np.fromfile(os.path.join(DIR, name), dtype=dt))


def report(ok, what, msg):
    global failed
    failed += not ok
    print(f"{'ok' if ok else 'FAIL'} {what} {msg}")


def compare(what, got, ref, tol):
    ref, got = ref.detach().double().reshape(-1), got.double().reshape(-1)
    err = (got - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
    report(err < tol, what, f"err={err:.2e} tol={tol:.0e}")


model = Model(cfg)
params, grads = load("params.f32", np.float32), load("grads.f32", np.float32)
named = dict(model.named_parameters())
for t in cfg["tensors"]:
    n = 1
    for s in t["shape"]:
        n *= s
    with torch.no_grad():
        named[t["name"]].copy_(params[t["offset"]:t["offset"] + n].double().view(*t["shape"]))
report(len(named) == len(cfg["tensors"]), "tensor table",
       f"{len(cfg['tensors'])} tensors in evo, {len(named)} in the reference")

T, V = cfg["T"], cfg["vocab"]
tokens, labels = load("tokens.i32", np.int32).long(), load("labels.i32", np.int32).long()
pos = load("positions.i32", np.int32).long()
logits = model(tokens, pos, cfg["cu_seqlens"])
loss = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=cfg["label_smoothing"])
(cfg["scale"] * loss).backward()
what = f"(H={cfg['heads']} KVH={cfg['kv_heads']} bias={cfg['bias']} eps_ls={cfg['label_smoothing']:g})"
compare(f"logits {what}", load("logits.f32", np.float32), logits, LOGITS)
err = abs(cfg["loss"] - loss.item()) / abs(loss.item())
report(err < LOSS, "loss", f"{cfg['loss']:.9g} vs {loss.item():.9g} err={err:.2e} tol={LOSS:.0e}")
for t in cfg["tensors"]:
    n = int(np.prod(t["shape"]))
    compare(f"grad {t['name']}", grads[t["offset"]:t["offset"] + n], named[t["name"]].grad, GRAD)
compare("packed row == each segment alone (logits)", load("alone.f32", np.float32),
        load("logits.f32", np.float32), ALONE)
if "--init-loss" in sys.argv:
    report(abs(cfg["loss"] - math.log(V)) < 0.1, "loss at init ~ ln(vocab)",
           f"{cfg['loss']:.4f} vs {math.log(V):.4f}")
sys.exit(1 if failed else 0)
