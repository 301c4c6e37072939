#!/usr/bin/python3
"""Recomputes what tests/c/model-check wrote into DIR with a PyTorch model
written from HF Transformers' LLaMA (RMSNorm, rotate_half RoPE at the given
position ids, explicit causal attention under a block-diagonal mask built
from cu_seqlens, SwiGLU, untied head, q/k/v/o biases when present), in
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


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = torch.nn.Parameter(torch.ones(d, dtype=torch.float64)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.H, self.KVH, self.hd = c["dim"], c["heads"], c["kv_heads"], c["head_dim"]
        kvd, b = self.KVH * self.hd, bool(c["bias"])
        self.q = torch.nn.Linear(d, d, bias=b, dtype=torch.float64)
        self.k = torch.nn.Linear(d, kvd, bias=b, dtype=torch.float64)
        self.v = torch.nn.Linear(d, kvd, bias=b, dtype=torch.float64)
        self.o = torch.nn.Linear(d, d, bias=b, dtype=torch.float64)
        self.base = c["rope_base"]

    def forward(self, x, pos, mask):
        T = x.shape[0]
        q = self.q(x).view(T, self.H, self.hd).transpose(0, 1)      # [H,T,hd]
        k = self.k(x).view(T, self.KVH, self.hd).transpose(0, 1)
        v = self.v(x).view(T, self.KVH, self.hd).transpose(0, 1)
        inv_freq = 1.0 / (self.base ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        freqs = pos.double()[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)                      # [T,hd]
        q = q * emb.cos() + rotate_half(q) * emb.sin()
        k = k * emb.cos() + rotate_half(k) * emb.sin()
        k = k.repeat_interleave(self.H // self.KVH, dim=0)           # HF repeat_kv
        v = v.repeat_interleave(self.H // self.KVH, dim=0)
        S = (q @ k.transpose(1, 2)) / math.sqrt(self.hd)
        S = S.masked_fill(~mask, float("-inf"))
        out = torch.softmax(S, -1) @ v                               # [H,T,hd]
        return self.o(out.transpose(0, 1).reshape(T, -1))


class MLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, f = c["dim"], c["ffn"]
        self.gate = torch.nn.Linear(d, f, bias=False, dtype=torch.float64)
        self.up = torch.nn.Linear(d, f, bias=False, dtype=torch.float64)
        self.down = torch.nn.Linear(f, d, bias=False, dtype=torch.float64)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(c["dim"], c["eps"]), Attention(c)
        self.mlp_norm, self.mlp = RMSNorm(c["dim"], c["eps"]), MLP(c)

    def forward(self, x, pos, mask):
        h = x + self.attn(self.attn_norm(x), pos, mask)
        return h + self.mlp(self.mlp_norm(h))


class Model(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = torch.nn.Embedding(c["vocab"], c["dim"], dtype=torch.float64)
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"], c["eps"])
        self.head = torch.nn.Linear(c["dim"], c["vocab"], bias=False, dtype=torch.float64)

    def forward(self, tokens, pos, cu):
        T = tokens.shape[0]
        seg = torch.zeros(T, dtype=torch.long)
        for i, (s0, s1) in enumerate(zip(cu[:-1], cu[1:])):
            seg[s0:s1] = i
        # causal, and never across a segment boundary
        mask = (seg[:, None] == seg[None, :]) & torch.ones(T, T, dtype=torch.bool).tril()
        x = self.embedding(tokens)
        for b in self.blocks:
            x = b(x, pos, mask)
        return self.head(self.norm(x))


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
