#!/usr/bin/python3
"""The exactness reference for evo-train: trains the model of a step-0
checkpoint on the rows of an evo-pack dump for STEPS optimizer steps, in
float64, with InternEvo's semantics written out below, and prints one JSON
line per step:
  {"step": s, "loss": ..., "lr": ..., "grad_norm": ..., "beta2": ...}
step counts from 1; loss is the step's loss before its update, lr and
beta2 those its update used, grad_norm the gradient's norm before clipping.
evo-train's log and final checkpoint are compared against these.

Usage: torch-train.py CKPT_DIR DUMP_FILE STEPS [--save-weights OUT.npz]
  CKPT_DIR   a step-0 checkpoint of evo-train (evo-ckpt(5)): the initial
             weights (model_tp0_pp0.evo) and every hyper-parameter
             (config.ini; the shapes are the model file's)
  DUMP_FILE  `evo-pack --dump all PACK`: the rows, in file order
  --save-weights OUT.npz  the final weights, float64, by evo tensor name

Step s (0-based: optimizer steps done before it):
  rows    the next micro_num rows in file order, wrapping at the end
  loss    the mean over those rows of each row's mean cross-entropy over
          its labelled tokens (label -100 is not; a row without any counts
          0), label smoothing loss.label_smoothing
  grad    the gradient of that loss; g = global L2 norm over all params;
          with clip = hybrid_zero_optimizer.clip_grad_norm > 0,
          coef = (g + 1e-6) / clip, and if coef > 1 the gradients are
          divided by coef
  lr      W = int(total * warmup_ratio), total = lr_scheduler.total_steps
          (data.total_steps if 0), I = lr_scheduler.init_steps:
          0 before I; lr (s + 1 - I) / W in warmup; then cosine
          eta_min + (lr - eta_min) (1 + cos(pi (s - I - W) / (total - I - W))) / 2
          (lr itself if no step is left for the cosine, as src/lib/compute/schedule.c)
  beta2   adam_beta2 at s = 0 or when beta2_scheduler.c <= 0, else
          max(init_beta2, 1 - 1 / s^c)
  AdamW   torch.optim.AdamW's update with t = s + 1, written out so beta2
          may change every step (as InternEvo's Beta2Scheduler changes
          the param group's), weight decay on every parameter:
            p -= lr wd p
            m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
            p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)"""
import argparse
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from evo_ckpt import number, read_config, read_tensor_file
from torch_llama import Model, read_dump


def lr_at(c, s):
    total = int(number(c["lr_scheduler"]["total_steps"])) or int(number(c["data"]["total_steps"]))
    init, lr = int(number(c["lr_scheduler"]["init_steps"])), number(c["adam"]["lr"])
    W, eta_min = int(total * number(c["lr_scheduler"]["warmup_ratio"])), number(c["lr_scheduler"]["eta_min"])
    if s < init:
        return 0.0
    if s < init + W:
        return (s + 1 - init) / W * lr
    if total <= init + W:
        return lr
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * (s - init - W) / (total - W - init))) / 2


def beta2_at(c, s):
    k = number(c["beta2_scheduler"]["c"])  # resolved: adam_beta2_c unless set
    if s == 0 or k <= 0:
        return number(c["adam"]["adam_beta2"])
    return max(number(c["beta2_scheduler"]["init_beta2"]), 1 - 1 / s ** k)


@torch.no_grad()
def adamw(params, m, v, t, lr, b1, b2, eps, wd):
    """One AdamW update, op for op as torch.optim.AdamW (single tensor)."""
    for p, mi, vi in zip(params, m, v):
        g = p.grad
        p.mul_(1 - lr * wd)
        mi.mul_(b1).add_(g, alpha=1 - b1)
        vi.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (vi.sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
        p.addcdiv_(mi, denom, value=-lr / (1 - b1 ** t))


def build_model(cfg, ckpt_dir):
    meta, weights = read_tensor_file(f"{ckpt_dir}/model_tp0_pp0.evo")
    if meta["step"] != 0 or meta["tp_size"] != 1 or meta["pp_size"] != 1:
        sys.exit(f"torch-train.py: {ckpt_dir}: a checkpoint of step {meta['step']}, tp {meta['tp_size']}, "
                 f"pp {meta['pp_size']}; want step 0 in one shard")
    mc = cfg["model"]
    heads = int(number(mc["num_attention_heads"]))
    c = {"vocab": int(number(mc["vocab_size"])), "dim": int(number(mc["hidden_size"])), "heads": heads,
         "kv_heads": int(number(mc["num_kv_attention_heads"])) or heads, "layers": int(number(mc["num_layers"])),
         "ffn": weights["blocks.0.mlp.gate.weight"].shape[0], "bias": mc["no_bias"] not in ("true", "True", "1", "yes"),
         "eps": number(mc["layer_norm_epsilon"]), "rope_base": number(mc["rope_base"])}
    model = Model(c, torch.float64)
    named = dict(model.named_parameters())
    if named.keys() != weights.keys():
        sys.exit(f"torch-train.py: tensors differ: only in the checkpoint {sorted(weights.keys() - named.keys())}, "
                 f"only in the reference {sorted(named.keys() - weights.keys())}")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(torch.from_numpy(weights[name]))   # shapes must agree
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt_dir")
    ap.add_argument("dump")
    ap.add_argument("steps", type=int)
    ap.add_argument("--save-weights", metavar="OUT.npz")
    a = ap.parse_args()
    cfg = read_config(f"{a.ckpt_dir}/config.ini")
    if cfg["data"].get("skip_batches") or cfg["data"].get("rampup_batch_size"):
        sys.exit("torch-train.py: [data] skip_batches and rampup_batch_size are not modelled")
    model = build_model(cfg, a.ckpt_dir)
    rows = read_dump(a.dump)
    micro_num, ls = int(number(cfg["data"]["micro_num"])), number(cfg["loss"]["label_smoothing"])
    clip = number(cfg["hybrid_zero_optimizer"]["clip_grad_norm"])
    b1, eps, wd = (number(cfg["adam"][k]) for k in ("adam_beta1", "adam_eps", "weight_decay"))
    params = list(model.parameters())
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]

    for s in range(a.steps):
        batch = [rows[(s * micro_num + j) % len(rows)] for j in range(micro_num)]
        # the rows one after another: a row's end is a segment's
        tokens, labels, pos = (torch.tensor(sum((r[k] for r in batch), [])) for k in ("tokens", "labels", "positions"))
        lens = [len(r["tokens"]) for r in batch]
        cu = [0] + [sum(lens[:j]) + c for j, r in enumerate(batch) for c in r["cu_seqlens"][1:]]
        per_token = F.cross_entropy(model(tokens, pos, cu), labels, ignore_index=-100, label_smoothing=ls,
                                    reduction="none")
        # a row's mean over its labelled tokens; ignored tokens add 0
        loss = torch.stack([lo.sum() / max(int((la != -100).sum()), 1)
                            for lo, la in zip(per_token.split(lens), labels.split(lens))]).mean()
        model.zero_grad(set_to_none=True)
        loss.backward()
        norm = math.sqrt(sum(p.grad.pow(2).sum().item() for p in params))
        if clip > 0 and (norm + 1e-6) / clip > 1:
            for p in params:
                p.grad.div_((norm + 1e-6) / clip)
        lr, b2 = lr_at(cfg, s), beta2_at(cfg, s)
        adamw(params, m, v, s + 1, lr, b1, b2, eps, wd)
        print(json.dumps({"step": s + 1, "loss": loss.item(), "lr": lr, "grad_norm": norm, "beta2": b2}),
              flush=True)

    if a.save_weights:
        np.savez(a.save_weights, **{n: p.detach().numpy() for n, p in model.named_parameters()})


if __name__ == "__main__":
    main()
