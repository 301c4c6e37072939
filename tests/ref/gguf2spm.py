#!/usr/bin/python3
"""Turn a llama.cpp vocab-only GGUF (SentencePiece family) into a SentencePiece
ModelProto (.model) that Debian's spm_encode loads.

Usage: gguf2spm.py IN.gguf OUT.model

Why: Meta's LLaMA-2 tokenizer.model cannot be downloaded here, but llama.cpp
ships the very same pieces, scores and piece types inside
models/ggml-vocab-llama-spm.gguf. The settings the GGUF does not carry
(BPE model, byte fallback, identity normalizer, no whitespace collapsing) are
written exactly as in Meta's file.

Stdlib only (run with /usr/bin/python3). Also imported as a module by
llama2-tokenizer-json.py for read_gguf().
"""
import os
import struct
import sys

# --- GGUF reader ---------------------------------------------------------
# Layout (v2/v3, little endian): "GGUF", u32 version, u64 n_tensors,
# u64 n_kv, then n_kv x (string key, u32 type, value). Strings are u64 length
# + bytes. v1 used u32 for those counts and lengths; llama.cpp dropped it, so do we.

_SCALARS = {  # GGUF value type -> struct format
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i",
    6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    pass


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise GGUFError("truncated GGUF at byte %d (need %d more)" % (self.pos, n))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.scalar("<Q")).decode("utf-8")

    def value(self, vtype):
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.scalar("<I"), self.scalar("<Q")
            if etype in _SCALARS:
                # Bulk-unpack: 32000-element score arrays one by one are slow.
                fmt = _SCALARS[etype]
                size = struct.calcsize(fmt)
                raw = self.take(size * count)
                return list(struct.unpack("<%d%s" % (count, fmt[1]), raw))
            return [self.value(etype) for _ in range(count)]
        raise GGUFError("unknown GGUF value type %d at byte %d" % (vtype, self.pos))


def read_gguf(path):
    """Return the metadata key/value dict of a GGUF file (tensors are ignored)."""
    with open(path, "rb") as f:
        r = _Reader(f.read())
    if r.take(4) != b"GGUF":
        raise GGUFError("not a GGUF file (bad magic)")
    version = r.scalar("<I")
    if version not in (2, 3):
        raise GGUFError("unsupported GGUF version %d" % version)
    r.scalar("<Q")  # tensor count
    n_kv = r.scalar("<Q")
    kv = {}
    for _ in range(n_kv):
        key = r.string()
        kv[key] = r.value(r.scalar("<I"))
    return kv


# --- protobuf writer -----------------------------------------------------
# Field numbers are those of google/sentencepiece src/sentencepiece_model.proto.

def _varint(n):
    n &= (1 << 64) - 1  # int32 -1 is sign-extended to 10 bytes, as protobuf does
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _int(field, v):
    return _key(field, 0) + _varint(int(v))


def _bytes(field, b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return _key(field, 2) + _varint(len(b)) + b


def _float(field, v):
    return _key(field, 5) + struct.pack("<f", v)


# SentencePiece.Type values; the GGUF token_type uses the same numbering.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def spm_vocab(kv):
    """(tokens, scores, types, unk, bos, eos, add_space_prefix) from GGUF metadata."""
    model = kv.get("tokenizer.ggml.model")
    if model != "llama":
        raise GGUFError("tokenizer.ggml.model is %r, expected 'llama' (SentencePiece)" % model)
    tokens = kv["tokenizer.ggml.tokens"]
    scores = kv.get("tokenizer.ggml.scores")
    types = kv.get("tokenizer.ggml.token_type")
    if scores is None or types is None:
        raise GGUFError("GGUF lacks tokenizer.ggml.scores or .token_type")
    if not (len(tokens) == len(scores) == len(types)):
        raise GGUFError("tokens/scores/token_type lengths differ")
    return (tokens, scores, types,
            kv.get("tokenizer.ggml.unknown_token_id", 0),
            kv.get("tokenizer.ggml.bos_token_id", 1),
            kv.get("tokenizer.ggml.eos_token_id", 2),
            kv.get("tokenizer.ggml.add_space_prefix", True))


def model_proto(kv):
    tokens, scores, types, unk, bos, eos, add_prefix = spm_vocab(kv)
    out = bytearray()
    for piece, score, typ in zip(tokens, scores, types):
        p = _bytes(1, piece) + _float(2, score)
        if typ != NORMAL:  # NORMAL is the proto default; Meta's file omits it too
            p += _int(3, typ)
        out += _bytes(1, p)

    # TrainerSpec as in Meta's LLaMA-2 tokenizer.model. Only model_type,
    # byte_fallback and the special ids change encoding; the rest is there so
    # the file describes the same model (spm_export_vocab, Python dumps).
    trainer = b"".join([
        _int(3, 2),                      # model_type = BPE
        _int(4, len(tokens)),            # vocab_size
        _int(20, 16),                    # max_sentencepiece_length
        _int(21, 1),                     # split_by_unicode_script
        _int(23, 1),                     # split_by_number
        _int(22, 1),                     # split_by_whitespace
        _int(24, 0),                     # treat_whitespace_as_suffix
        _int(26, 1),                     # allow_whitespace_only_pieces
        _int(25, 1),                     # split_digits
        _int(35, 1),                     # byte_fallback
        _int(32, 1),                     # vocabulary_output_piece_score
        _int(33, 1),                     # hard_vocab_limit
        _int(34, 0),                     # use_all_vocab
        _int(40, unk), _int(41, bos), _int(42, eos), _int(43, -1),
        _bytes(45, tokens[unk]), _bytes(46, tokens[bos]), _bytes(47, tokens[eos]),
        _bytes(48, "<pad>"),
        _bytes(44, " \u2047 "),          # unk_surface
    ])
    normalizer = b"".join([
        _bytes(1, "identity"),
        _int(3, 1 if add_prefix else 0),  # add_dummy_prefix
        _int(4, 0),                       # remove_extra_whitespaces: LLaMA keeps runs of spaces
        _int(5, 1),                       # escape_whitespaces
    ])
    out += _bytes(2, trainer) + _bytes(3, normalizer)
    return bytes(out)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: gguf2spm.py IN.gguf OUT.model\n")
        return 2
    try:
        proto = model_proto(read_gguf(argv[1]))
    except (GGUFError, KeyError, UnicodeDecodeError, OSError) as e:
        sys.stderr.write("gguf2spm: %s: %s\n" % (argv[1], e))
        return 1
    tmp = argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(proto)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
