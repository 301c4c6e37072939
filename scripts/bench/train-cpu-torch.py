#!/usr/bin/python3
"""Benchmark: the PyTorch side of evo-train's CPU training benchmark. Trains
the model evo trains (tests/ref/torch_llama.py: InternLM v1, q/k/v/o biases,
SwiGLU of 8/3 rounded up to a multiple of 256) in float32 eager PyTorch, as
a user would: causal attention per segment of the packed row
(scaled_dot_product_attention where PyTorch has it, the formula before 2.0),
cross-entropy over the labelled tokens, clip_grad_norm_(1.0),
torch.optim.AdamW (foreach). Times STEPS optimizer steps after WARMUP
untimed ones and prints

  tokens_per_s=<x> peak_rss_mb=<y>

tokens: micro_bsz x seq_len per step (one row, micro_num 1); peak RSS of
the process (getrusage). Attention per segment costs what flash-attn's
varlen kernel computes; a block-diagonal mask over the whole row would
compute micro_bsz times more scores.

Usage: train-cpu-torch.py --config S|M --threads N [--steps 10] [--warmup 2]
                          (--dump FILE | --synthetic)
  --dump FILE   rows of `evo-pack --dump all PACK` (seq_len x micro_bsz of
                the config), used in order, wrapping
  --synthetic   random tokens in random segments (documents), no file
Configs:
  S  vocab 8192, dim 256, 4 layers, 8 heads, seq_len 256, micro_bsz 8
  M  vocab 32000, dim 512, 8 layers, 8 heads, seq_len 512, micro_bsz 4"""
import argparse
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/ref"))
from torch_llama import Model, read_dump  # noqa: E402

CONFIGS = {
    "S": dict(vocab=8192, dim=256, layers=4, heads=8, seq_len=256, micro_bsz=8),
    "M": dict(vocab=32000, dim=512, layers=8, heads=8, seq_len=512, micro_bsz=4),
}


def model_config(c):
    ffn = -(-int(c["dim"] * 8 / 3) // 256) * 256    # evo_model_ffn_size
    return dict(vocab=c["vocab"], dim=c["dim"], heads=c["heads"], kv_heads=c["heads"], layers=c["layers"],
                ffn=ffn, bias=True, eps=1e-5, rope_base=10000.0)


def tensors(r, c):
    """A row of read_dump as (tokens, labels, positions, cu_seqlens)."""
    if len(r["tokens"]) != c["micro_bsz"] * c["seq_len"]:
        sys.exit(f"train-cpu-torch.py: rows of {len(r['tokens'])} tokens, the config's have "
                 f"{c['micro_bsz'] * c['seq_len']} (evo-pack -s {c['seq_len']} -b {c['micro_bsz']})")
    return [torch.tensor(r[k]) for k in ("tokens", "labels", "positions")] + [r["cu_seqlens"]]


def synthetic_row(c, g):
    """Random tokens in documents of 1 to 4 seq_len tokens, cut into
    segments every seq_len tokens as evo-pack cuts them; labels are the
    next token of the segment."""
    L, S = c["micro_bsz"] * c["seq_len"], c["seq_len"]
    tokens = torch.randint(c["vocab"], (L,), generator=g).tolist()
    cu = [0]
    while cu[-1] < L:
        end = min(L, cu[-1] + int(torch.randint(1, 4 * S + 1, (1,), generator=g)))
        cu += range(cu[-1] + S, end, S)
        cu.append(end)
    labels, positions = [], []
    for s0, s1 in zip(cu[:-1], cu[1:]):
        labels += tokens[s0 + 1:s1] + [-100]
        positions += range(s1 - s0)
    return tensors({"tokens": tokens, "labels": labels, "positions": positions, "cu_seqlens": cu}, c)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=CONFIGS, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--dump")
    src.add_argument("--synthetic", action="store_true")
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0:
        ap.error("--steps must be at least 1, --warmup at least 0")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    c = CONFIGS[a.config]
    n = a.warmup + a.steps
    if a.synthetic:
        g = torch.Generator().manual_seed(1)
        rows = [synthetic_row(c, g) for _ in range(min(n, 8))]
    else:
        rows = [tensors(r, c) for r in read_dump(a.dump, max_rows=n)]  # no more in the peak RSS

    model = Model(model_config(c), torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, foreach=True)
    for i in range(n):
        if i == a.warmup:
            start = time.perf_counter()
        tokens, labels, positions, cu_seqlens = rows[i % len(rows)]
        loss = F.cross_entropy(model(tokens, positions, cu_seqlens), labels, ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    n_tokens = a.steps * c["micro_bsz"] * c["seq_len"]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# config {a.config}: {n_params / 1e6:.1f} M params, {a.threads} threads, torch {torch.__version__}, "
          f"{1e3 * seconds / a.steps:.0f} ms/step, last loss {loss.item():.3f}", file=sys.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024    # ru_maxrss is in KB on Linux
    print(f"tokens_per_s={n_tokens / seconds:.1f} peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
