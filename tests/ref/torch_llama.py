"""The transformer evo trains (src/lib/formats/model.c), in PyTorch: InternLM v1 /
LLaMA as HF Transformers writes it. RMSNorm, rotate_half RoPE at given
position ids, causal attention inside each segment of a packed sequence
(cu_seqlens, as flash-attn's varlen functions take it), GQA (HF's
repeat_kv), SwiGLU MLP without biases, q/k/v/o biases when c["bias"],
untied head.

Parameter names are evo's tensor names (embedding.weight,
blocks.{i}.attn.q.weight, ..., head.weight) and Linear weights are
[out, in], so a state dict maps one to one onto an evo tensor table.

Any float dtype: float64 for the exactness references (torch-model.py,
torch-train.py), float32 for the CPU benchmark
(scripts/bench/train-cpu-torch.py).

c is a dict: vocab, dim, heads, kv_heads, layers, ffn, bias, eps,
rope_base (the keys of tests/c/model-check's index.json).

Also here: read_dump, the rows of `evo-pack --dump all`, the model's
input as evo-train is fed it."""
import math

import torch
import torch.nn.functional as F


class RMSNorm(torch.nn.Module):
    def __init__(self, d, eps, dtype):
        super().__init__()
        self.weight, self.eps = torch.nn.Parameter(torch.ones(d, dtype=dtype)), eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attend(q, k, v):
    """Causal softmax(q k^T / sqrt(hd)) v over one segment, [H,L,hd] each.
    PyTorch before 2.0 has no scaled_dot_product_attention: the same
    formula, written out."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    L = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    return torch.softmax(s.masked_fill(~causal, float("-inf")), -1) @ v


class Attention(torch.nn.Module):
    def __init__(self, c, dtype):
        super().__init__()
        d, self.H, self.KVH = c["dim"], c["heads"], c["kv_heads"]
        self.hd = d // self.H
        kvd, b = self.KVH * self.hd, bool(c["bias"])
        self.q = torch.nn.Linear(d, d, bias=b, dtype=dtype)
        self.k = torch.nn.Linear(d, kvd, bias=b, dtype=dtype)
        self.v = torch.nn.Linear(d, kvd, bias=b, dtype=dtype)
        self.o = torch.nn.Linear(d, d, bias=b, dtype=dtype)

    def forward(self, x, cos, sin, lengths):
        T = x.shape[0]
        q = self.q(x).view(T, self.H, self.hd).transpose(0, 1)          # [H,T,hd]
        k = self.k(x).view(T, self.KVH, self.hd).transpose(0, 1)
        v = self.v(x).view(T, self.KVH, self.hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.H != self.KVH:                                          # HF repeat_kv
            k = k.repeat_interleave(self.H // self.KVH, dim=0)
            v = v.repeat_interleave(self.H // self.KVH, dim=0)
        segs = zip(q.split(lengths, 1), k.split(lengths, 1), v.split(lengths, 1))
        out = torch.cat([attend(*qkv) for qkv in segs], 1)             # [H,T,hd]
        return self.o(out.transpose(0, 1).reshape(T, -1))


class MLP(torch.nn.Module):
    def __init__(self, c, dtype):
        super().__init__()
        d, f = c["dim"], c["ffn"]
        self.gate = torch.nn.Linear(d, f, bias=False, dtype=dtype)
        self.up = torch.nn.Linear(d, f, bias=False, dtype=dtype)
        self.down = torch.nn.Linear(f, d, bias=False, dtype=dtype)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(torch.nn.Module):
    def __init__(self, c, dtype):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(c["dim"], c["eps"], dtype), Attention(c, dtype)
        self.mlp_norm, self.mlp = RMSNorm(c["dim"], c["eps"], dtype), MLP(c, dtype)

    def forward(self, x, cos, sin, lengths):
        h = x + self.attn(self.attn_norm(x), cos, sin, lengths)
        return h + self.mlp(self.mlp_norm(h))


class Model(torch.nn.Module):
    def __init__(self, c, dtype=torch.float64):
        super().__init__()
        self.embedding = torch.nn.Embedding(c["vocab"], c["dim"], dtype=dtype)
        self.blocks = torch.nn.ModuleList(Block(c, dtype) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"], c["eps"], dtype)
        self.head = torch.nn.Linear(c["dim"], c["vocab"], bias=False, dtype=dtype)
        hd = c["dim"] // c["heads"]
        # in float64 whatever the model's dtype, rounded once in forward
        self.inv_freq = 1.0 / (c["rope_base"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))

    def forward(self, tokens, pos, cu_seqlens):
        """tokens, pos (RoPE positions): [T] integers of a packed sequence
        (one row, or rows one after another), cut into segments at
        cu_seqlens [0, ..., T]. Returns the logits [T,V]."""
        lengths = [b - a for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:])]
        freqs = pos.double()[:, None] * self.inv_freq                  # [T,hd/2]
        emb = torch.cat((freqs, freqs), dim=-1)                         # [T,hd]
        dtype = self.head.weight.dtype
        cos, sin = emb.cos().to(dtype), emb.sin().to(dtype)
        x = self.embedding(tokens)
        for b in self.blocks:
            x = b(x, cos, sin, lengths)
        return self.head(self.norm(x))


def read_dump(path, max_rows=None):
    """The rows of `evo-pack --dump all PACK` (evo-pack(1)), in file order
    (the first max_rows only if given): a list of dicts of int lists:
    cu_seqlens, tokens, labels, positions. "text k:" lines (--tokenizer)
    are skipped."""
    rows, row = [], None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            key, _, rest = line.partition(" ")
            if key == "row":
                if len(rows) == max_rows:
                    break
                row = {}
                rows.append(row)
            elif key in ("cu_seqlens", "tokens", "labels", "positions"):
                if row is None or key in row:
                    raise ValueError(f"{path}:{n}: {key} outside a row block")
                row[key] = [int(v) for v in rest.split()]
    for i, r in enumerate(rows):
        if len(r) != 4 or r["cu_seqlens"][0] != 0 or \
                not len(r["tokens"]) == len(r["labels"]) == len(r["positions"]) == r["cu_seqlens"][-1]:
            raise ValueError(f"{path}: row {i}: incomplete or inconsistent")
    if not rows:
        raise ValueError(f"{path}: no rows (not an evo-pack --dump file?)")
    return rows
