#!/usr/bin/python3
"""Write the Hugging Face tokenizer.json of LLaMA-2 (meta-llama/Llama-2-7b-hf
layout) from llama.cpp's ggml-vocab-llama-spm.gguf.

Usage: llama2-tokenizer-json.py IN.gguf OUT.json [llama-tokenizer.js]

The vocab and scores come from the GGUF (the same pieces as Meta's
tokenizer.model). The merges are derived from them the way transformers'
LlamaConverter does (convert_slow_tokenizer.generate_merges): every split of a
piece into two pieces that are both in the vocab is a merge, ranked by the
score of the merged piece, best first.

With the optional third argument (npm llama-tokenizer-js, which embeds the
vocab and merge list of the genuine Llama-2 tokenizer.json), the vocab must be
identical and the merge list is checked to be the same set; the genuine order
is then written, so the file is Meta's/HF's byte for byte in content.

Stdlib only (run with /usr/bin/python3).
"""
import base64
import json
import os
import re
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf2spm  # noqa: E402


def converter_merges(vocab_scores):
    """transformers' generate_merges(vocab, vocab_scores) for a BPE .model."""
    vocab = {p: i for i, (p, _) in enumerate(vocab_scores)}
    merges = []
    for merged, score in vocab_scores:  # vocab order = id order (dict order)
        local = []
        for k in range(1, len(merged)):
            left, right = merged[:k], merged[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda m: (vocab[m[0]], vocab[m[1]]))
        merges.extend(local)
    # Python's sort is stable also with reverse=True; that stability decides
    # the order among equal keys, so keep exactly this call shape.
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(m[0], m[1]) for m in merges]


def js_vocab_and_merges(path):
    """Vocab list and merge list embedded in npm llama-tokenizer-js.

    The JS file holds two base64 strings: the vocab as '\\n'-joined tokens in
    id order, and the merges as little-endian u16 (left id, right id) pairs in
    rank order (see the package's data-conversion.py)."""
    src = open(path, encoding="utf-8").read()

    def const(name):
        m = re.search(r'const %s = "([A-Za-z0-9+/=]+)"' % name, src)
        if not m:
            raise ValueError("%s: no %s constant" % (path, name))
        return base64.b64decode(m.group(1))

    vocab = const("llama_vocab_base64").decode("utf-8").split("\n")
    raw = const("llama_merges_binary")
    ids = struct.unpack("<%dH" % (len(raw) // 2), raw)
    merges = [(vocab[ids[i]], vocab[ids[i + 1]]) for i in range(0, len(ids), 2)]
    return vocab, merges


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True}


def tokenizer_json(tokens, scores, merges):
    # LlamaConverter.vocab(): ids 0..2 are forced to <unk>,<s>,</s> with score 0.
    vocab = {t: i for i, t in enumerate(tokens)}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(0, tokens[0]), added(1, tokens[1]), added(2, tokens[2])],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>",
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": True, "byte_fallback": True,
            "vocab": vocab,
            # Llama-2's file uses the pre-0.20 "left right" string form; no
            # LLaMA piece contains a plain space, so it is unambiguous.
            "merges": ["%s %s" % m for m in merges],
        },
    }


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: llama2-tokenizer-json.py IN.gguf OUT.json [llama-tokenizer.js]\n")
        return 2
    try:
        tokens, scores, _, unk, bos, eos, _ = gguf2spm.spm_vocab(gguf2spm.read_gguf(argv[1]))
    except (gguf2spm.GGUFError, KeyError, UnicodeDecodeError, OSError) as e:
        sys.stderr.write("llama2-tokenizer-json: %s: %s\n" % (argv[1], e))
        return 1
    if (unk, bos, eos) != (0, 1, 2) or len(set(tokens)) != len(tokens):
        sys.stderr.write("llama2-tokenizer-json: %s is not the LLaMA-2 vocab\n" % argv[1])
        return 1
    vocab_scores = [(t, 0.0 if i < 3 else s) for i, (t, s) in enumerate(zip(tokens, scores))]
    merges = converter_merges(vocab_scores)
    if len(argv) == 4:
        js_vocab, js_merges = js_vocab_and_merges(argv[3])
        if js_vocab != tokens:
            sys.stderr.write("llama2-tokenizer-json: vocab of %s differs from the GGUF\n" % argv[3])
            return 1
        if set(js_merges) != set(merges) or len(js_merges) != len(merges):
            sys.stderr.write("llama2-tokenizer-json: merges of %s differ from the derived ones "
                             "(%d vs %d)\n" % (argv[3], len(js_merges), len(merges)))
            return 1
        merges = js_merges
    tmp = argv[2] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(tokens, scores, merges), f, ensure_ascii=False, indent=2)
    os.replace(tmp, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
