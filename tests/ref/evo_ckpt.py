"""Reads evo checkpoints (src/lib/formats/ckpt.h, evo-ckpt(5)) into numpy, for the
PyTorch references that start from or compare against what evo-train
saved. A second implementation of the format from its spec, so it also
checks the C reader and writer: every field it relies on is validated, and
the header and section XXH3-64 checksums are verified when the xxhash
module is importable (Debian: python3-xxhash).

  read_checkpoint(DIR) -> {"config": {section: {key: str}}, "state": dict,
                           "model": (meta, tensors), "optimizer": (meta, tensors)}
                          (one shard: tp = pp = zero = 1)
  read_tensor_file(PATH) -> (meta dict, {name: float32 array of its shape})

Values of every dtype (f32, bf16, f16) come back as float32, which holds
them exactly. Config values stay text; number() reads them as evo does."""
import configparser
import json
import os
import struct

import numpy as np

try:
    import xxhash
except ImportError:
    xxhash = None

MAGIC = b"EVOCKPT\0"
PREFIX, ALIGN, ENTRY = 64, 64, 32
META_SIZE, TENSOR_SIZE = 256, 128
KINDS = {1: "model", 2: "optimizer"}
SEC_TENSORS, SEC_DATA = 1, 2
TOP = "top level"  # config.ini's keys before any [section]


def _align(x):
    return (x + ALIGN - 1) // ALIGN * ALIGN


def read_binfile(path, magic):
    """An evo binfmt container (src/lib/formats/binfmt.h): (meta bytes, {section id:
    bytes}), after checking the prefix, the sizes and the checksums."""
    with open(path, "rb") as f:
        b = f.read()

    def bad(offset, what):
        return ValueError(f"{path}: offset {offset}: {what}")

    if len(b) < PREFIX or b[:8] != magic:
        raise bad(0, f"not a {magic.rstrip(bytes(1)).decode()} file (bad magic or too short)")
    version, hsize, fsize, hsum, meta_size, n_sec = struct.unpack_from("<IIQQII", b, 8)
    if version != 1:
        raise bad(8, f"format version {version}, this reader knows 1")
    if fsize != len(b):
        raise bad(16, f"header says {fsize} bytes, the file has {len(b)}")
    if hsize != PREFIX + _align(meta_size) + _align(n_sec * ENTRY) or hsize > len(b):
        raise bad(12, "inconsistent header size")
    if xxhash and xxhash.xxh3_64_intdigest(b[:24] + bytes(8) + b[32:hsize]) != hsum:
        raise bad(24, "header checksum mismatch")
    sections, tab = {}, PREFIX + _align(meta_size)
    for i in range(n_sec):
        sid, _, off, size, xh = struct.unpack_from("<IIQQQ", b, tab + i * ENTRY)
        if off % ALIGN or off < hsize or off + size > len(b) or sid in sections:
            raise bad(tab + i * ENTRY, f"section {sid} misplaced or listed twice")
        data = b[off:off + size]
        if xxhash and xxhash.xxh3_64_intdigest(data) != xh:
            raise bad(off, f"checksum mismatch in section {sid}")
        sections[sid] = data
    return b[PREFIX:PREFIX + meta_size], sections


def _values(raw, dtype):
    """DATA bytes of evo_dtype dtype (0 f32, 1 bf16, 2 f16) as float32."""
    if dtype == 0:
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if dtype == 1:  # bf16 is the top half of an f32
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    if dtype == 2:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    raise ValueError(f"dtype {dtype}")


def read_tensor_file(path):
    """A model or optimizer .evo file: (meta, {name: array}) in table order."""
    meta_raw, sec = read_binfile(path, MAGIC)
    if len(meta_raw) < META_SIZE or SEC_TENSORS not in sec or SEC_DATA not in sec:
        raise ValueError(f"{path}: not a checkpoint shard (meta of {len(meta_raw)} bytes, sections {sorted(sec)})")
    kind, dtype, tp, tps, pp, pps, zr, zs, step, n_t, n_el = struct.unpack_from("<8I3Q", meta_raw)
    if kind not in KINDS or dtype not in (0, 1, 2):
        raise ValueError(f"{path}: kind {kind}, dtype {dtype}: unknown")
    meta = {"kind": KINDS[kind], "dtype": dtype, "tp_rank": tp, "tp_size": tps, "pp_rank": pp, "pp_size": pps,
            "zero_rank": zr, "zero_size": zs, "step": step, "n_tensors": n_t, "n_elements": n_el}
    table, data = sec[SEC_TENSORS], _values(sec[SEC_DATA], dtype)
    if len(table) != n_t * TENSOR_SIZE or data.size != n_el:
        raise ValueError(f"{path}: sections disagree with the meta ({n_t} tensors, {n_el} elements)")
    tensors, at = {}, 0
    for i in range(n_t):
        e = table[i * TENSOR_SIZE:(i + 1) * TENSOR_SIZE]
        name = e[:64].split(b"\0")[0].decode()
        ndim, = struct.unpack_from("<I", e, 64)
        shape, (offset, numel) = struct.unpack_from("<4Q", e, 72), struct.unpack_from("<2Q", e, 104)
        shape = shape[:ndim]
        if b"\0" not in e[:64] or not 1 <= ndim <= 4 or offset != at or numel != int(np.prod(shape)) \
                or name in tensors:
            raise ValueError(f"{path}: tensor {i} ({name!r}): bad table entry")
        tensors[name] = data[offset:offset + numel].reshape(shape)
        at += numel
    if at != n_el:
        raise ValueError(f"{path}: the tensors hold {at} of {n_el} elements")
    return meta, tensors


def read_config(path):
    """config.ini as {section: {key: value text}}; the keys before the first
    [section] (JOB_NAME) are in section ""."""
    p = configparser.ConfigParser(interpolation=None)
    p.optionxform = str  # keys keep their case
    with open(path) as f:
        p.read_string(f"[{TOP}]\n" + f.read(), source=path)
    return {"" if s == TOP else s: dict(p[s]) for s in p.sections()}


def number(text):
    """A config number as evo reads it: 1e-4, or a/b, a**b (8/3, 2**16)."""
    if "**" in text:
        a, b = text.split("**")
        return float(a) ** float(b)
    if "/" in text:
        a, b = text.split("/")
        return float(a) / float(b)
    return float(text)


def read_checkpoint(path):
    """A checkpoint directory FOLDER/STEP written by evo-train, of one
    shard (tp = pp = zero = 1: the layouts of ckpt_layout.h are not merged
    here); "optimizer" is None in a checkpoint without optimizer files."""
    out = {"config": read_config(os.path.join(path, "config.ini")), "optimizer": None}
    with open(os.path.join(path, "state.json")) as f:
        out["state"] = json.load(f)
    for kind, name in (("model", "model_tp0_pp0.evo"), ("optimizer", "optimizer_tp0_pp0_zo0.evo")):
        if kind == "optimizer" and not os.path.exists(os.path.join(path, name)):
            continue
        meta, tensors = out[kind] = read_tensor_file(os.path.join(path, name))
        if meta["kind"] != kind or (meta["tp_size"], meta["pp_size"], meta["zero_size"]) != (1, 1, 1):
            raise ValueError(f"{path}/{name}: holds {meta['kind']} tensors of tp {meta['tp_size']}, "
                             f"pp {meta['pp_size']}, zero {meta['zero_size']}; this reader wants a 1/1/1 model")
    return out
