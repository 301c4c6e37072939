#!/usr/bin/python3
"""A HuggingFace Transformers model directory without Transformers: the
reference evo-convert2hf is checked against (t0410-convert.sh).

Written from the Transformers and safetensors semantics, sharing no code
with evo: safetensors files are parsed with json + numpy, the model is
LlamaForCausalLM's forward (modeling_llama.py) in float64, and directories
are written as save_pretrained writes them (the safetensors library's
layout, huggingface_hub's sharding, the index and config JSON).

  torch-hf.py compare "ID..." HFDIR=EVO_LOGITS.f32...
      LLaMA's logits for the ids (positions 0..T-1, causal) against evo's
      [T, vocab] fp32 logits, for each pair; prints the relative error (max
      |diff| / max |logit|), exits 1 if one is above 1e-5.
  torch-hf.py make HFDIR [--vocab N --hidden N --layers N --heads N
                          --kv-heads N --ffn N --bias 0|1 --tied 0|1
                          --dtype F32|BF16|F16 --max-shard BYTES --seed N]
      a random LlamaForCausalLM, written as save_pretrained writes it.
  torch-hf.py same-weights A B
      B holds A's tensors (same names and shapes), each cast to B's dtype
      with PyTorch's rounding (round to nearest even).
  torch-hf.py corrupt IN.safetensors PREFIX
      hostile copies, PREFIX-KIND.safetensors for every KIND: short,
      truncated, header-past-eof, bad-json, not-object, duplicate-name,
      overlap, reversed-range, shape-mismatch, huge-shape, unknown-dtype.

PyTorch is imported only by the commands that compute with it: it takes
longer to import than the rest takes to run."""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

torch = None  # imported by main() for the commands that compute with it

# The safetensors library's Dtype enum order: a file's data is sorted by
# dtype in this order (descending), then by name.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64",
               "I64", "U64"]
TORCH_NAME = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


# --- safetensors ---------------------------------------------------------------

def read_safetensors(path):
    """{name: float64 array}, and {name: dtype string}."""
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out, dtypes = {}, {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        dt = info["dtype"]
        if dt == "BF16":  # the top half of an fp32
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype={"F32": "<f4", "F16": "<f2"}[dt])
        out[name] = a.astype(np.float64).reshape(info["shape"])
        dtypes[name] = dt
    return out, dtypes


def to_bytes(a, dt):
    """A float32 array's bytes in dtype dt, rounded to nearest even."""
    if dt == "BF16":  # the top half of the fp32, rounded (no NaN here)
        u = a.astype("<f4").view(np.uint32).astype(np.uint64)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    return a.astype({"F32": "<f4", "F16": "<f2"}[dt]).tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: {name: (dtype, shape, bytes)}, laid out as the library does."""
    items = sorted(tensors.items(), key=lambda kv: (-DTYPE_ORDER.index(kv[1][0]), kv[0]))
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dt, shape, raw) in items:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, (_, _, raw) in items:
            f.write(raw)


def read_dir(d):
    """A model directory's config and {name: float64 array}, {name: dtype}."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
        else ["model.safetensors"]
    weights, dtypes = {}, {}
    for f in files:
        w, t = read_safetensors(os.path.join(d, f))
        weights.update(w)
        dtypes.update(t)
    return cfg, weights, dtypes


# --- LlamaForCausalLM -----------------------------------------------------------

def rms_norm(x, w, eps):

    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def llama_logits(cfg, w, ids):
    w = {n: torch.from_numpy(a) for n, a in w.items()}
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    hd = cfg.get("head_dim") or d // H
    eps, theta = cfg.get("rms_norm_eps", 1e-6), cfg.get("rope_theta", 10000.0)
    bias = cfg.get("attention_bias", False)
    T = len(ids)
    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    # LlamaRotaryEmbedding: inv_freq over even dims, cos/sin of cat(freqs, freqs)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None], emb.sin()[None]
    mask = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."

        def lin(name, inp):
            y = inp @ w[p + name + ".weight"].T
            return y + w[p + name + ".bias"] if bias and name.startswith("self_attn") else y

        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin("self_attn.q_proj", h).view(T, H, hd).transpose(0, 1)
        k = lin("self_attn.k_proj", h).view(T, KV, hd).transpose(0, 1)
        v = lin("self_attn.v_proj", h).view(T, KV, hd).transpose(0, 1)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KV, dim=0), v.repeat_interleave(H // KV, dim=0)  # repeat_kv
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1) @ v
        x = x + lin("self_attn.o_proj", att.transpose(0, 1).reshape(T, H * hd))
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + lin("mlp.down_proj", torch.nn.functional.silu(lin("mlp.gate_proj", h)) * lin("mlp.up_proj", h))
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") and "lm_head.weight" not in w \
        else w["lm_head.weight"]
    return rms_norm(x, w["model.norm.weight"], eps) @ head.T


def compare(a):
    ids = [int(i) for i in a.ids.split()]
    worst = 0.0
    for pair in a.pairs:
        d, logits = pair.split("=", 1)
        cfg, w, _ = read_dir(d)
        ref = llama_logits(cfg, w, ids)
        got = torch.from_numpy(np.fromfile(logits, dtype="<f4").astype(np.float64)).view(len(ids), -1)
        if got.shape != ref.shape:
            sys.exit(f"{logits}: evo's logits are {tuple(got.shape)}, LLaMA's {tuple(ref.shape)}")
        rel = ((got - ref).abs().max() / ref.abs().max()).item()
        print(f"{d}: relative error {rel:.3g} over {len(ids)} x {ref.shape[1]} logits")
        worst = max(worst, rel)
    sys.exit(0 if worst < 1e-5 else 1)


# --- save_pretrained --------------------------------------------------------------

def state_dict(cfg, rng):
    """A random model's tensors in HF's state_dict order (module registration)."""
    d, V, ffn = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * d // cfg["num_attention_heads"]
    norm = lambda *s: rng.standard_normal(s, dtype=np.float32) * np.float32(0.05)
    sd = {"model.embed_tokens.weight": norm(V, d)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for n, rows in (("q", d), ("k", kv), ("v", kv), ("o", d)):
            sd[p + f"self_attn.{n}_proj.weight"] = norm(rows, d)
            if cfg["attention_bias"]:
                sd[p + f"self_attn.{n}_proj.bias"] = norm(rows)
        sd[p + "mlp.gate_proj.weight"] = norm(ffn, d)
        sd[p + "mlp.up_proj.weight"] = norm(ffn, d)
        sd[p + "mlp.down_proj.weight"] = norm(d, ffn)
        sd[p + "input_layernorm.weight"] = 1 + norm(d)
        sd[p + "post_attention_layernorm.weight"] = 1 + norm(d)
    sd["model.norm.weight"] = 1 + norm(d)
    if not cfg["tie_word_embeddings"]:
        sd["lm_head.weight"] = norm(V, d)
    return sd


def split_shards(sizes, max_size):
    """huggingface_hub's split_torch_state_dict_into_shards: [[names]]."""
    shards, current, fill = [], [], 0
    for name, size in sizes:
        if size > max_size:
            shards.append([name])
            continue
        if fill + size > max_size:
            shards.append(current)
            current, fill = [], 0
        current.append(name)
        fill += size
    if current:
        shards.append(current)
    return shards


def make(a):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": a.vocab,
           "hidden_size": a.hidden, "intermediate_size": a.ffn, "num_hidden_layers": a.layers,
           "num_attention_heads": a.heads, "num_key_value_heads": a.kv_heads or a.heads, "hidden_act": "silu",
           "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 500000.0, "rope_scaling": None,
           "attention_bias": bool(a.bias), "mlp_bias": False, "tie_word_embeddings": bool(a.tied),
           "torch_dtype": TORCH_NAME[a.dtype], "bos_token_id": 1, "eos_token_id": 2,
           "transformers_version": "4.44.0"}
    sd = state_dict(cfg, np.random.default_rng(a.seed))
    raw = {n: to_bytes(t, a.dtype) for n, t in sd.items()}
    shards = split_shards([(n, len(b)) for n, b in raw.items()], a.max_shard)
    os.makedirs(a.dir)
    names = ["model.safetensors"] if len(shards) == 1 else \
        [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    for file, shard in zip(names, shards):
        write_safetensors(os.path.join(a.dir, file), {n: (a.dtype, sd[n].shape, raw[n]) for n in shard},
                          {"format": "pt"})
        weight_map.update({n: file for n in shard})
    dump = lambda obj: json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(len(b) for b in raw.values())}, "weight_map": weight_map}
        open(os.path.join(a.dir, "model.safetensors.index.json"), "w").write(dump(index))
    open(os.path.join(a.dir, "config.json"), "w").write(dump(cfg))


def same_weights(a):
    types = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    _, wa, _ = read_dir(a.a)
    _, wb, tb = read_dir(a.b)
    if sorted(wa) != sorted(wb):
        sys.exit(f"different tensors: {sorted(set(wa) ^ set(wb))[:5]}")
    for n in wa:
        want = torch.from_numpy(wa[n]).to(torch.float32).to(types[tb[n]]).to(torch.float64)
        if wa[n].shape != wb[n].shape or not torch.equal(want, torch.from_numpy(wb[n])):
            sys.exit(f"{n}: not A's values cast to {tb[n]}")
    print(f"{len(wa)} tensors equal A's, cast to {sorted(set(tb.values()))} by PyTorch")


# --- hostile files ------------------------------------------------------------------

KINDS = ["short", "truncated", "header-past-eof", "bad-json", "not-object", "duplicate-name", "overlap",
         "reversed-range", "shape-mismatch", "huge-shape", "unknown-dtype"]


def corrupted(kind, data):
    (n,) = struct.unpack_from("<Q", data, 0)
    header = json.loads(data[8:8 + n])
    names = [k for k in header if k != "__metadata__"]
    first, second = names[0], names[1]
    if kind == "short":  # not even the header length
        return data[:4]
    if kind == "truncated":
        return data[:len(data) - 100]
    if kind == "header-past-eof":
        return struct.pack("<Q", len(data)) + data[8:]
    if kind == "bad-json":
        raw = data[8:8 + n].replace(b'"dtype"', b'"dtype" "', 1)
    elif kind == "not-object":
        raw = b"[1, 2, 3]"
    elif kind == "duplicate-name":
        text = data[8:8 + n].decode().rstrip()
        raw = (text[:-1] + "," + json.dumps(first) + ":" + json.dumps(header[first]) + "}").encode()
    else:
        if kind == "overlap":  # the second tensor moved back into the first's last 4 bytes
            b, e = header[second]["data_offsets"]
            end = header[first]["data_offsets"][1]
            header[second]["data_offsets"] = [end - 4, end - 4 + e - b]
        elif kind == "reversed-range":
            header[first]["data_offsets"].reverse()
        elif kind == "shape-mismatch":
            header[first]["shape"][0] += 1
        elif kind == "huge-shape":  # 2^62 x 2^62 x 4 bytes overflows 64 bits
            header[first]["shape"] = [2 ** 62, 2 ** 62]
        elif kind == "unknown-dtype":
            header[first]["dtype"] = "F128"
        raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n:]


def corrupt(a):
    data = open(a.src, "rb").read()
    for kind in KINDS:
        open(f"{a.prefix}-{kind}.safetensors", "wb").write(corrupted(kind, data))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("ids")
    c.add_argument("pairs", nargs="+")
    m = sub.add_parser("make")
    m.add_argument("dir")
    for name, default in (("vocab", 8000), ("hidden", 32), ("layers", 2), ("heads", 4), ("kv-heads", 0),
                          ("ffn", 96), ("bias", 0), ("tied", 0), ("max-shard", 5 * 10 ** 9), ("seed", 1)):
        m.add_argument("--" + name, type=int, default=default)
    m.add_argument("--dtype", default="F32", choices=sorted(TORCH_NAME))
    s = sub.add_parser("same-weights")
    s.add_argument("a")
    s.add_argument("b")
    k = sub.add_parser("corrupt")
    k.add_argument("src")
    k.add_argument("prefix")
    a = p.parse_args()
    if a.cmd in ("compare", "same-weights"):
        global torch
        import torch
    {"compare": compare, "make": make, "same-weights": same_weights, "corrupt": corrupt}[a.cmd](a)


if __name__ == "__main__":
    main()
