#!/usr/bin/python3
"""pack-model.py - a short Python model of evo-pack, to check it against.

It reads evo token files itself (evo-tokens(5)) and packs them the way
InternEvo's PackedDataset does (internlm/data/tokenized/packed_dataset.py,
build_pack / PackedDatasetWithoutCuSeqlen), with the rules of the evo-pack
spec written out literally and slowly, then prints what
`evo-pack --dump all` prints:

    pack-model.py [evo-pack options] INPUT...        the training rows
    pack-model.py --show-valid --valid X ... INPUT... the validation rows

Options as evo-pack: -s/--seq-len, -b/--micro-bsz, --seed, --pack-into-one,
--min-length, --max-doc-len, --keep-tail, --epochs, --tokens, --valid,
INPUT as PATH, PATH:WEIGHT or - (stdin). -o, --valid-out, --embed, -j, -q
and --progress are accepted and ignored, so one argument list serves both.
Needs numpy (np.random.RandomState is the shuffle InternEvo uses);
checksums are verified when the xxhash module is there.
"""
import argparse
import struct
import sys

import numpy as np

try:
    import xxhash
except ImportError:  # checksums are the tool's business; the model can skip them
    xxhash = None


class TokenFile:
    """One token file: tokens (list of ints), target (list of 0/1), docs [(start, end)]."""

    def __init__(self, path):
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
        magic, version, header_size, file_size, hsum, meta_size, n_sec = struct.unpack_from("<8sIIQQII", data, 0)
        assert magic == b"EVOTOKS\0" and version == 1, f"{path}: not an evo token file"
        assert file_size == len(data), f"{path}: truncated"
        if xxhash:
            head = bytearray(data[:header_size])
            head[24:32] = bytes(8)
            assert xxhash.xxh3_64_intdigest(bytes(head)) == hsum, f"{path}: header checksum"
        meta = data[64:64 + meta_size]
        (self.vocab_size, width, self.bos, self.eos, flags, _, n_docs, n_tokens) = struct.unpack_from("<IIiiIIQQ", meta)
        self.fingerprint = meta[40:56].hex()
        table = 64 + (meta_size + 63) // 64 * 64
        sections = {}
        for k in range(n_sec):
            sid, _, off, size, xsum = struct.unpack_from("<IIQQQ", data, table + 32 * k)
            body = data[off:off + size]
            if xxhash:
                assert xxhash.xxh3_64_intdigest(body) == xsum, f"{path}: section {sid} checksum"
            sections[sid] = body
        self.tokens = np.frombuffer(sections[1], dtype="<u2" if width == 2 else "<u4").astype(np.int64).tolist()
        offsets = np.frombuffer(sections[2], dtype="<u8").tolist()
        assert len(self.tokens) == n_tokens and len(offsets) == n_docs + 1
        self.docs = list(zip(offsets[:-1], offsets[1:]))
        if flags & 1:  # MASK: bit i, least significant first, 1 = loss target
            bits = np.unpackbits(np.frombuffer(sections[3], dtype=np.uint8), bitorder="little")
            self.target = bits[:n_tokens].tolist()
        else:
            self.target = [1] * n_tokens


# A document of the stream: (file, start, end), tokens file.tokens[start:end].
# A piece of a row: (file, start, end, a, b), the part [a, b) of that document.


def documents(f, opt):
    """Steps 1 and 2: the kept documents in file order, long ones split."""
    docs = []
    for s, e in f.docs:
        if e - s < opt.min_length:
            continue
        if opt.max_doc_len and e - s > opt.max_doc_len:
            docs += [(f, p, min(p + opt.max_doc_len, e)) for p in range(s, e, opt.max_doc_len)]
        else:
            docs.append((f, s, e))
    return docs


def split_valid(docs, opt):
    """Step 3: (training docs, validation docs), both in file order."""
    if not opt.valid:
        return docs, []
    n = len(docs)
    k = round(opt.valid * n) if opt.valid < 1 else min(int(opt.valid), n)
    held = set(np.random.RandomState(opt.seed + 1).permutation(n)[:k].tolist())
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def shuffled_epochs(docs, rng):
    """Step 4: the docs, shuffled by rng once per epoch, forever."""
    while True:
        idx = np.arange(len(docs))
        rng.shuffle(idx)
        for i in idx:
            yield docs[i]


def cut(stream, L, keep_tail, max_rows=None):
    """Step 5: cut the concatenated documents every L tokens into rows of pieces."""
    rows, row, fill = [], [], 0
    for f, s, e in stream:
        p = s
        while p < e:
            take = min(e - p, L - fill)
            row.append((f, s, e, p, p + take))
            fill += take
            p += take
            if fill == L:
                rows.append(row)
                row, fill = [], 0
                if max_rows is not None and len(rows) == max_rows:
                    return rows
    if row and keep_tail:
        rows.append(row)
    return rows


def render(number, row, opt):
    """One --dump block: InternEvo's build_pack (or WithoutCuSeqlen) and packed_collate_fn."""
    seq_len, L = opt.seq_len, opt.seq_len * opt.micro_bsz
    tokens, labels, cu, pos = [], [], [0], []
    for f, s, e, a, b in row:
        tokens += f.tokens[a:b]
        for g in range(a, b):
            # the next token of the document, or -100 at its end; --pack-into-one
            # also ends every piece with -100; a context-only target is -100
            last = g + 1 == e or (opt.pack_into_one and g + 1 == b)
            labels.append(-100 if last or not f.target[g + 1] else f.tokens[g + 1])
        q, r = divmod(b - a, seq_len)
        for n in [seq_len] * q + ([r] if r else []):
            cu.append(cu[-1] + n)
            pos += range(n)
    pad = L - len(tokens)
    if pad:
        tokens += [0] * pad
        labels += [-100] * pad
        cu.append(cu[-1] + pad)
        pos += range(pad)
    if opt.pack_into_one:
        cu = list(range(0, L + 1, seq_len))
        pos = [j % seq_len for j in range(L)]
    n_labels = sum(1 for x in labels if x != -100)
    return "\n".join([
        f"row {number}: {L} tokens, {len(cu) - 1} segments, {n_labels} labels, {pad} pad",
        "cu_seqlens " + " ".join(map(str, cu)),
        "tokens " + " ".join(map(str, tokens)),
        "labels " + " ".join(map(str, labels)),
        "positions " + " ".join(map(str, pos)),
    ]) + "\n"


def pack(inputs, opt):
    """All training rows and all validation rows, as lists of pieces."""
    L = opt.seq_len * opt.micro_bsz
    split = [split_valid(documents(f, opt), opt) for f, _ in inputs]
    train, valid = [], []
    if all(w is None for _, w in inputs):
        # one PackedDataset per input (own rng, own tail), then ConcatDataset
        for (f, _), (tdocs, vdocs) in zip(inputs, split):
            rng = np.random.RandomState(opt.seed)
            stream = shuffled_epochs(tdocs, rng)
            per_epoch = len(tdocs)
            train += cut((next(stream) for _ in range(per_epoch * opt.epochs)), L, opt.keep_tail)
            valid += cut(vdocs, L, True)
        return train, valid
    # Mixing: each input an endless shuffled stream; draw from the one
    # furthest behind its weight until the budget's rows are filled.
    weights = [1.0 if w is None else w for _, w in inputs]
    sizes = [sum(e - s for _, s, e in tdocs) for tdocs, _ in split]
    budget = opt.tokens if opt.tokens is not None else sum(sizes) * opt.epochs
    need = -(-budget // L) if opt.keep_tail else budget // L
    streams = [shuffled_epochs(tdocs, np.random.RandomState(opt.seed + 1000 * (i + 1)))
               for i, (tdocs, _) in enumerate(split)]
    live = [i for i in range(len(inputs)) if sizes[i] > 0]  # an input without tokens can give nothing
    emitted = [0] * len(inputs)
    drawn, total = [], 0
    while live and total < need * L:
        i = min(live, key=lambda i: (emitted[i] / weights[i], i))
        d = next(streams[i])
        drawn.append(d)
        emitted[i] += d[2] - d[1]
        total += d[2] - d[1]
    train = cut(drawn, L, opt.keep_tail, need)
    valid = cut([d for _, vdocs in split for d in vdocs], L, True)
    return train, valid


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("inputs", nargs="*")
    ap.add_argument("-s", "--seq-len", type=int, default=2048)
    ap.add_argument("-b", "--micro-bsz", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1024)
    ap.add_argument("--pack-into-one", action="store_true")
    ap.add_argument("--min-length", type=int, default=0)
    ap.add_argument("--max-doc-len", type=int, default=0)
    ap.add_argument("--keep-tail", action="store_true")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--valid", type=float)
    ap.add_argument("--show-valid", action="store_true", help="print the validation rows instead")
    for ignored in ("-o", "--output", "--valid-out", "-j"):
        ap.add_argument(ignored, help=argparse.SUPPRESS)
    for ignored in ("--embed", "-q", "--progress"):
        ap.add_argument(ignored, action="store_true", help=argparse.SUPPRESS)
    opt = ap.parse_args()
    inputs = []
    for arg in opt.inputs:
        path, weight = arg, None
        if ":" in arg:
            try:
                path, weight = arg.rsplit(":", 1)[0], float(arg.rsplit(":", 1)[1])
            except ValueError:
                path, weight = arg, None
        inputs.append((TokenFile(path), weight))
    fps = {f.fingerprint for f, _ in inputs}
    assert len(fps) <= 1, f"different tokenizers: {sorted(fps)}"
    train, valid = pack(inputs, opt)
    rows = valid if opt.show_valid else train
    sys.stdout.write("\n".join(render(i, row, opt) for i, row in enumerate(rows)))


if __name__ == "__main__":
    main()
