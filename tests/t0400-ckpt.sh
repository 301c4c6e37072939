#!/usr/bin/env bash
# evo-ckpt on the checkpoints of a tiny evo-train run: ls, info, verify,
# diff, cat, reshard (there and back byte for byte, the layout read back by
# an independent Python reader, a run resumed from a resharded checkpoint
# continuing bit for bit), pack/unpack, prune, average; checkpoints being
# written; hostile checkpoints and archives.
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive
PY=/usr/bin/python3
export PYTHONPATH=$EVO_ROOT/tests/ref

tiny_training
evo-train -q --set ckpt.save_ckpt_folder=a tiny.ini
# A GQA model without biases, 4 layers: its initial checkpoint.
evo-train -q --set ckpt.save_ckpt_folder=g --set data.total_steps=0 --set model.num_kv_attention_heads=2 \
    --set model.no_bias=true --set model.num_layers=4 tiny.ini
check "evo-train wrote checkpoints a/10, a/20 and g/0" test -f a/10/10.step -a -f a/20/20.step -a -f g/0/0.step

# remark DIR: rewrites DIR's marker for its files as they are now, so that
# damage reaches the checks behind the marker's.
remark() {
    $PY -c '
import os, sys, xxhash
d = sys.argv[1]; step = os.path.basename(d)
names = [l.split("  ")[2].rstrip("\n") for l in open(os.path.join(d, step + ".step"))]
lines = ["%016x  %d  %s\n" % (xxhash.xxh3_64_intdigest(open(os.path.join(d, n), "rb").read()),
                              os.path.getsize(os.path.join(d, n)), n) for n in names]
open(os.path.join(d, step + ".step"), "w").write("".join(lines))' "$1"
}
# poke FILE TENSOR INDEX VALUE: sets one fp32 value of a tensor file and
# its checksums (section and header), then the marker.
poke() {
    $PY -c '
import struct, sys, xxhash
path, name, index, value = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
b = bytearray(open(path, "rb").read())
hsize, = struct.unpack_from("<I", b, 12)
meta_size, n_sec = struct.unpack_from("<II", b, 32)
table = 64 + (meta_size + 63) // 64 * 64
sec = {}
for i in range(n_sec):
    sid, _, off, size, _ = struct.unpack_from("<IIQQQ", b, table + 32 * i)
    sec[sid] = (off, size, table + 32 * i)
n_tensors, = struct.unpack_from("<Q", b, 64 + 40)
for i in range(n_tensors):
    e = sec[1][0] + 128 * i
    if bytes(b[e:e + 64]).rstrip(b"\0").decode() == name:
        struct.pack_into("<f", b, sec[2][0] + 4 * (struct.unpack_from("<Q", b, e + 104)[0] + index), value)
off, size, entry = sec[2]
struct.pack_into("<Q", b, entry + 24, xxhash.xxh3_64_intdigest(bytes(b[off:off + size])))
struct.pack_into("<Q", b, 24, 0)
struct.pack_into("<Q", b, 24, xxhash.xxh3_64_intdigest(bytes(b[:hsize])))
open(path, "wb").write(b)' "$@"
    remark "$(dirname "$1")"
}
# no_output OUT: nothing of a failed write left: neither OUT nor a temporary.
no_output() { test ! -e "$1" && ! compgen -G "$(dirname "$1")/.tmp-*" >/dev/null; }

# --- ls -------------------------------------------------------------------------------
want=$($PY -c '
import json
tokens = json.load(open("a/10/state.json"))["tokens"]
loss = [j["loss"] for j in map(json.loads, open("a/metrics.jsonl")) if j.get("step") == 10][-1]
print(tokens, "%.4f" % loss, "complete")')
check "ls: step 10 with its tokens, loss and status ($want)" test "$(evo-ckpt ls a | awk '$1 == 10 {print $2, $3, $NF}')" = "$want"
cp -r a l
mkdir l/30 l/.tmp-40-$$ l/.tmp-50-999999999
out=$(evo-ckpt ls l)
check "ls: a step without its marker is incomplete" grep -q '^30 .* incomplete: no marker' <<<"$out"
check "ls: a live save is being written" grep -q "^40 .* .tmp-40-$$: being written (process $$)" <<<"$out"
check "ls: a dead save is abandoned" grep -q '^50 .* .tmp-50-999999999: abandoned' <<<"$out"
check_fails "ls: a missing folder" 1 '^evo-ckpt: nope: No such file or directory' evo-ckpt ls nope

# --- a checkpoint being written -------------------------------------------------------------
check_fails "info on a save being written says so" 1 "l/.tmp-40-$$: a checkpoint being written \(by process $$\)" \
    evo-ckpt info l/.tmp-40-$$
check_fails "verify on an abandoned save says so" 1 'l/.tmp-50-999999999: an abandoned save' \
    evo-ckpt verify l/.tmp-50-999999999
check_fails "cat on a step without marker says so" 1 'l/30: incomplete checkpoint: no completion marker 30.step' \
    evo-ckpt cat l/30 norm.weight

# --- info, verify -----------------------------------------------------------------------------
out=$(evo-ckpt info a/20)
check "info: the layout" grep -q '^layout:      tp 1, pp 1, zero 1$' <<<"$out"
check "info: a tensor with shape, dtype, shard" grep -Eq '^blocks.1.mlp.down.weight +\[32, 256\] +f32 +pp 0, zo 0$' <<<"$out"
check "info: the data position" grep -q '^data:        batch 20, rows 40, tokens 2560; pack train.pack' <<<"$out"
check "info --json: step, layout, 29 tensors, state and config" $PY -c '
import json, sys
j = json.load(sys.stdin)
assert j["step"] == 20 and j["layout"]["tp"] == 1 and j["layout"]["zero"] == 1, j["layout"]
assert len(j["tensors"]) == 29 and j["tensors"][0]["shape"] == [8000, 32]
assert j["state"] == json.load(open("a/20/state.json"))
assert j["config"]["model"]["hidden_size"] == "32" and j["config"]["JOB_NAME"] == "tiny"' < <(evo-ckpt info --json a/20)
check "verify: a checkpoint of evo-train" sh -c 'evo-ckpt verify a/20 | grep -q "^a/20: OK: step 20, 4 files, 29 tensors"'

# --- reshard ------------------------------------------------------------------------------------
check "reshard a/10 to tp 2, pp 2, zero 2" evo-ckpt -q reshard a/10 --tp 2 --pp 2 --zero 2 -o b/10
check "reshard: the result verifies" evo-ckpt -q verify b/10
check "reshard: 4 model and 8 optimizer files" test "$(ls b/10 | grep -c '^model_tp[01]_pp[01].evo$')" = 4 -a \
    "$(ls b/10 | grep -c '^optimizer_tp[01]_pp[01]_zo[01].evo$')" = 8
check "reshard back to tp 1, pp 1, zero 1" evo-ckpt -q reshard b/10 --tp 1 --pp 1 --zero 1 -o c/10
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo state.json config.ini 10.step; do
    check "reshard there and back: $f byte for byte" cmp a/10/$f c/10/$f
done
# Between two split layouts (tp 2 -> 4 -> 2): each piece is gathered from
# the overlapping stored pieces, never from the whole tensor.
check "reshard b/10 (tp 2) to tp 4 and back to tp 2: the same bytes" sh -c \
    'evo-ckpt -q reshard b/10 --tp 4 -o b4/10 && evo-ckpt -q reshard b4/10 --tp 2 -o b2/10 && cmp b/10/10.step b2/10/10.step'
check "reshard tp 4 to tp 1: the same bytes as the original" sh -c \
    'evo-ckpt -q reshard b4/10 --tp 1 --pp 1 --zero 1 -o b1/10 && cmp a/10/10.step b1/10/10.step'
check "reshard g/0 (GQA, no bias, 4 layers) to tp 2, pp 3, zero 3" evo-ckpt -q reshard g/0 --tp 2 --pp 3 --zero 3 -o h/0
check "reshard to the same layout: the same bytes" sh -c 'evo-ckpt -q reshard h/0 -o h2/0 && cmp h/0/0.step h2/0/0.step'
check "reshard g/0 there and back: the same bytes" sh -c \
    'evo-ckpt -q reshard h/0 --tp 1 --pp 1 --zero 1 -o g2/0 && cmp g/0/0.step g2/0/0.step'
# The layout as evo-ckpt(5) defines it, read with tests/ref/evo_ckpt.py:
# every piece the slice of the whole tensor it should be, the layers
# partitioned as InternEvo's partition_uniform, the moments dealt by its
# greedy rule.
layout_check() {
    $PY - "$@" <<'EOF'
import sys
import numpy as np
from evo_ckpt import read_tensor_file
whole, cut, tp, pp, zero, layers = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
_, w = read_tensor_file(f"{whole}/model_tp0_pp0.evo")
_, opt = read_tensor_file(f"{whole}/optimizer_tp0_pp0_zo0.evo")
stages, base = [], 0
for p in range(pp):  # partition_uniform: remainder to the last stages
    n = layers // pp + (p >= pp - layers % pp)
    stages.append(range(base, base + n))
    base += n
def place(name):
    if name == "embedding.weight": return 0, 1
    if name == "norm.weight": return pp - 1, None
    if name == "head.weight": return pp - 1, 0
    layer, rest = int(name.split(".")[1]), name.split(".", 2)[2]
    stage = [p for p in range(pp) if layer in stages[p]][0]
    if rest in ("attn_norm.weight", "mlp_norm.weight"): return stage, None
    if rest == "attn.o.bias": return stage, "rank0"
    return stage, 1 if rest in ("attn.o.weight", "mlp.down.weight") else 0
def piece(x, split, t):
    return x if split in (None, "rank0") else np.split(x, tp, axis=split)[t]
for p in range(pp):
    for t in range(tp):
        meta, got = read_tensor_file(f"{cut}/model_tp{t}_pp{p}.evo")
        assert (meta["tp_rank"], meta["tp_size"], meta["pp_rank"], meta["pp_size"]) == (t, tp, p, pp), meta
        want = [n for n in w if place(n)[0] == p and (place(n)[1] != "rank0" or t == 0)]
        assert list(got) == want, (t, p, list(got), want)
        for n in want:
            assert np.array_equal(got[n], piece(w[n], place(n)[1], t)), n
        load, owner = [0] * zero, {}
        for n in sorted(want, key=lambda n: -got[n].size):  # stable, as Python's sorted is
            z = load.index(min(load))
            owner[n] = z
            load[z] += got[n].size
        for z in range(zero):
            meta, mom = read_tensor_file(f"{cut}/optimizer_tp{t}_pp{p}_zo{z}.evo")
            assert (meta["zero_rank"], meta["zero_size"]) == (z, zero), meta
            mine = [n for n in want if owner[n] == z]
            assert list(mom) == ["adam.m." + n for n in mine] + ["adam.v." + n for n in mine], (t, p, z)
            for k in mom:
                assert np.array_equal(mom[k], piece(opt[k], place(k[7:])[1], t)), k
EOF
}
check "layout of b/10 (tp 2, pp 2, zero 2) read back independently" layout_check a/10 b/10 2 2 2 2
check "layout of h/0 (tp 2, pp 3, zero 3: layers 1, 1, 2) read back independently" layout_check g/0 h/0 2 3 3 4
check "info: the stages of h/0" sh -c 'evo-ckpt info h/0 | grep -q "^  stage 2:   layers 2-3, final norm, head$"'

# A run resumed from the resharded-and-back checkpoint continues bit for
# bit as the straight run.
out=$(evo-train --set ckpt.save_ckpt_folder=c tiny.ini 2>&1)
check "evo-train resumes from the resharded c/10" grep -q 'resuming from c/10 (step 10' <<<"$out"
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo state.json; do
    check "resumed from resharded = straight: $f at step 20" cmp a/20/$f c/20/$f
done
check "resumed from resharded = straight: the loss log" cmp <(steps a/metrics.jsonl | tail -10) <(steps c/metrics.jsonl)
# ... and so does a run resumed straight from the tp 2, pp 2, zero 2 b/10,
# its shards merged as it loads.
out=$(evo-train --set ckpt.load_ckpt_folder=b/10 --set ckpt.save_ckpt_folder=sh tiny.ini 2>&1)
check "evo-train continues from the sharded b/10" grep -q 'continuing from b/10 (step 10' <<<"$out"
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo state.json; do
    check "resumed from tp 2 x pp 2 x zero 2 = straight: $f at step 20" cmp a/20/$f sh/20/$f
done
check "resumed from tp 2 x pp 2 x zero 2 = straight: the loss log" cmp <(steps a/metrics.jsonl | tail -10) \
    <(steps sh/metrics.jsonl)

check_fails "reshard: tp must divide the heads" 1 \
    '^evo-ckpt: a/10: cannot lay it out as tp 3, pp 1: tensor parallel size 3 does not divide the attention heads \(4\)$' \
    evo-ckpt reshard a/10 --tp 3 -o x/10
check_fails "reshard: tp must divide the kv heads" 1 'does not divide the key/value heads \(2\)' \
    evo-ckpt reshard g/0 --tp 4 -o x/0
check_fails "reshard: a stage per layer at least" 1 'pipeline parallel size 3 is more than the 2 layers' \
    evo-ckpt reshard a/10 --pp 3 -o x/10
check_fails "reshard: an output that exists" 1 '^evo-ckpt: b/10: already exists$' evo-ckpt reshard a/10 -o b/10
check_fails "reshard: an output named by another step" 1 'x/11: the checkpoint is of step 10: name its copy 10' \
    evo-ckpt reshard a/10 -o x/11
check_fails "reshard: an output not named by a step" 2 'x: a checkpoint directory is named by its step' \
    evo-ckpt reshard a/10 -o x
check "reshard: nothing left by the failures" no_output x/10

# --- diff ----------------------------------------------------------------------------------------
check "diff: a checkpoint and its reshard are identical (weights and moments)" sh -c \
    'evo-ckpt diff a/10 b/10 | grep -qx "87 tensors identical, 0 differences"'
evo-ckpt diff a/10 a/20 >d.out
check "diff: different steps exit 1" test $? = 1
want=$($PY -c '
import numpy as np
from evo_ckpt import read_tensor_file
a, b = read_tensor_file("a/10/model_tp0_pp0.evo")[1], read_tensor_file("a/20/model_tp0_pp0.evo")[1]
x, y = a["head.weight"].astype(np.float64), b["head.weight"].astype(np.float64)
print("tensor head.weight: max abs %.6g, max rel %.6g" % (abs(x - y).max(), (abs(x - y) / np.maximum(abs(x), abs(y))).max()))')
check "diff: per-tensor max abs and rel as numpy computes them" grep -qxF "$want" d.out
check "diff: the steps" grep -qx 'step: 10 -> 20' d.out
evo-ckpt diff a/10 g/0 >d2.out
check "diff: config key by key" grep -qx 'config model.num_kv_attention_heads: 4 -> 2' d2.out
check "diff: another shape" grep -qxF 'tensor blocks.0.attn.k.weight: shape [32, 32] -> [16, 32]' d2.out
check "diff: tensors in one only" grep -qx 'tensor blocks.3.mlp.up.weight: only in g/0' d2.out

# --- cat ------------------------------------------------------------------------------------------
check "cat --npy: a tensor merged from tp 2, pp 2" evo-ckpt cat b/10 blocks.1.attn.o.weight --npy -o o.npy
check "cat -o: raw moments to a file" evo-ckpt cat b/10 adam.v.embedding.weight -o v.raw
evo-ckpt cat h/0 blocks.3.attn.o.weight >w.raw
check "cat: the values numpy reads back" $PY -c '
import numpy as np
from evo_ckpt import read_tensor_file
w = read_tensor_file("a/10/model_tp0_pp0.evo")[1]
o = read_tensor_file("a/10/optimizer_tp0_pp0_zo0.evo")[1]
g = read_tensor_file("g/0/model_tp0_pp0.evo")[1]
x = np.load("o.npy")
assert x.dtype == np.float32 and np.array_equal(x, w["blocks.1.attn.o.weight"])
assert np.array_equal(np.fromfile("v.raw", "<f4").reshape(8000, 32), o["adam.v.embedding.weight"])
assert np.array_equal(np.fromfile("w.raw", "<f4").reshape(32, 32), g["blocks.3.attn.o.weight"])'
check_fails "cat: an unknown tensor" 1 '^evo-ckpt: a/10: no tensor nope \(evo-ckpt info lists them\)$' \
    evo-ckpt cat a/10 nope

# --- pack, unpack -----------------------------------------------------------------------------------
check "pack b/10" evo-ckpt pack b/10 -o b.tar.zst
check "pack: a zstd tar of 10/ with the marker last" sh -c \
    'tar --zstd -tf b.tar.zst | sed -n "1p;\$p" | tr "\n" " " | grep -qx "10/ 10/10.step "'
check "unpack" evo-ckpt -q unpack b.tar.zst -o u/10
check "unpack: the same files, byte for byte" diff -r b/10 u/10
check "pack - | unpack -" sh -c 'evo-ckpt pack a/20 -o - | evo-ckpt -q unpack - -o u/20 && diff -r a/20 u/20'
head -c 1000000 b.tar.zst >cut.tar.zst
check_fails "unpack: a truncated archive" 1 '^evo-ckpt: cut.tar.zst: ' evo-ckpt unpack cut.tar.zst -o x/10
check "unpack: nothing left by a truncated archive" no_output x/10
# tar FILE DIR [NAME=SOURCE...]: a plain tar of checkpoint DIR (entries STEP/...), each NAME's
# content taken from SOURCE instead.
mktar() {
    $PY -c '
import io, os, sys, tarfile
out, d, swaps = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
step = os.path.basename(d)
with tarfile.open(out, "w") as t:
    for name in sorted(os.listdir(d)) + [n for n in swaps if n not in os.listdir(d)]:
        data = open(swaps.get(name, os.path.join(d, name)), "rb").read()
        info = tarfile.TarInfo(name if name.startswith("../") else step + "/" + name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))' "$@"
}
printf 'x' | dd of=bad.evo bs=1 count=1 2>/dev/null && cat a/20/model_tp0_pp0.evo >>bad.evo
mktar swapped.tar a/20 model_tp0_pp0.evo=bad.evo
check_fails "unpack: a file other than its marker says" 1 \
    '^evo-ckpt: swapped.tar: model_tp0_pp0.evo: 2283137 bytes, the marker says 2283136$' \
    evo-ckpt unpack swapped.tar -o x/20
check "unpack: nothing left by a bad file" no_output x/20
mktar evil.tar a/20 ../evil=a/20/config.ini
check_fails "unpack: an entry outside the checkpoint" 1 'evil.tar: entry ../evil is not in the checkpoint directory 20/' \
    evo-ckpt unpack evil.tar -o x/20
check "unpack: nothing written outside" test ! -e x/evil -a ! -e evil
mktar nomarker.tar a/20 && $PY -c '
import tarfile
with tarfile.open("nomarker.tar") as t, tarfile.open("nomarker2.tar", "w") as o:
    for m in t.getmembers():
        if not m.name.endswith(".step"): o.addfile(m, t.extractfile(m))'
check_fails "unpack: no marker" 1 'nomarker2.tar: no completion marker 20/20.step in the archive' \
    evo-ckpt unpack nomarker2.tar -o x/20
check_fails "unpack: into a directory of another step" 1 'swapped.tar: holds checkpoint 20, not 30' \
    evo-ckpt unpack swapped.tar -o x/30
check_fails "unpack: an output that exists" 1 '^evo-ckpt: u/10: already exists$' evo-ckpt unpack b.tar.zst -o u/10
mktar twice.tar a/20 && $PY -c '
import io, tarfile
with tarfile.open("twice.tar", "a") as t:
    data = open("a/20/config.ini", "rb").read()
    i = tarfile.TarInfo("20/config.ini"); i.size = len(data); t.addfile(i, io.BytesIO(data))'
check_fails "unpack: a file in the archive twice" 1 '^evo-ckpt: twice.tar: config.ini is in the archive twice$' \
    evo-ckpt unpack twice.tar -o x/20
$PY -c '
import io, tarfile
with tarfile.open("many.tar", "w") as t:
    for k in range(45592):
        t.addfile(tarfile.TarInfo("20/f%d" % k), io.BytesIO(b""))'
check_fails "unpack: more entries than a marker can list" 1 'many.tar: more than 45590 files' \
    evo-ckpt unpack many.tar -o x/20
$PY -c '
import io, tarfile
with tarfile.open("onlymarker.tar", "w") as t:
    d = tarfile.TarInfo("20/"); d.type = tarfile.DIRTYPE; t.addfile(d)
    data = open("a/20/20.step", "rb").read()
    i = tarfile.TarInfo("20/20.step"); i.size = len(data); t.addfile(i, io.BytesIO(data))'
check_fails "unpack: the marker alone" 1 'onlymarker.tar: [^ ]* is listed in the marker but not in the archive' \
    evo-ckpt unpack onlymarker.tar -o x/20
check "unpack: nothing left by the failures" no_output x/20

# --- prune, average --------------------------------------------------------------------------------
cp -r a p
check_fails "prune: removes all but the newest" 0 'p: removed 1 checkpoint: 10, kept the newest 1' \
    evo-ckpt prune p --keep 1
check "prune: 20 kept, 10 gone" test -f p/20/20.step -a ! -e p/10
check_fails "prune: --keep 0 is a usage error" 2 '--keep wants a whole number from 1' evo-ckpt prune p --keep 0
check "average of a/10, b/10 (its reshard) and a/20" evo-ckpt -q average a/10 b/10 a/20 -o avg/20
check "average: a model-only checkpoint that verifies" sh -c \
    'evo-ckpt verify avg/20 | grep -q "OK: step 20, 2 files, 29 tensors, 569760 parameters, tp 1, pp 1, model only"'
check "average: the mean in float64, rounded once" $PY -c '
import numpy as np
from evo_ckpt import read_tensor_file
x, y, m = (read_tensor_file(d + "/model_tp0_pp0.evo")[1] for d in ("a/10", "a/20", "avg/20"))
for k in x:
    assert np.array_equal(m[k], ((x[k].astype(np.float64) + x[k] + y[k]) / 3).astype(np.float32)), k'
out=$(evo-train --set ckpt.load_model_only_folder=avg/20 --set ckpt.enable_save_ckpt=false --set data.total_steps=1 tiny.ini 2>&1)
check "average: evo-train starts from it (load_model_only_folder)" grep -q 'weights from avg/20' <<<"$out"
check_fails "average: checkpoints of different models" 1 'g/0: .*not the same model' \
    evo-ckpt average a/10 g/0 -o x/10
check "average: nothing left by the failure" no_output x/10

# --- hostile checkpoints ---------------------------------------------------------------------------------
bad() { rm -rf bad && mkdir bad && cp -r "$1" bad/; }
bad b/10 && truncate -s 5000 bad/10/model_tp1_pp0.evo
check_fails "verify: a truncated file (marker)" 1 '^evo-ckpt: bad/10/model_tp1_pp0.evo: 5000 bytes, the marker says 571840$' \
    evo-ckpt verify bad/10
remark bad/10
check_fails "verify: a truncated file (its header)" 1 'bad/10/model_tp1_pp0.evo: offset 16: header says 571840 bytes' \
    evo-ckpt verify bad/10
bad b/10 && printf 'x' | dd of=bad/10/optimizer_tp0_pp1_zo0.evo bs=1 seek=300000 conv=notrunc 2>/dev/null
check_fails "verify: a corrupted byte (section checksum)" 1 \
    'bad/10/optimizer_tp0_pp1_zo0.evo: offset 640: checksum mismatch in section 2' evo-ckpt verify bad/10
remark bad/10
check_fails "verify: a corrupted byte under a rewritten marker (section checksum)" 1 \
    'bad/10/optimizer_tp0_pp1_zo0.evo: offset 640: checksum mismatch in section 2' evo-ckpt verify bad/10
# The files intact, the marker's hash of one of them wrong.
bad b/10 && sed -i '/optimizer_tp0_pp1_zo0/{s/^f/e/;t;s/^./f/}' bad/10/10.step
check_fails "verify: a damaged marker" 1 'bad/10/optimizer_tp0_pp1_zo0.evo: checksum [0-9a-f]+, the marker says' \
    evo-ckpt verify bad/10
bad b/10 && rm bad/10/10.step
check_fails "verify: no marker" 1 'bad/10: incomplete checkpoint: no completion marker 10.step' evo-ckpt verify bad/10
bad b/10 && sed -i 's/^hidden_size = 32/hidden_size = 64/' bad/10/config.ini && remark bad/10
check_fails "verify: shapes not the config's" 1 \
    'bad/10/model_tp0_pp0.evo: tensor embedding.weight has shape \[8000, 16\], the configured model.s piece is \[8000, 32\]' \
    evo-ckpt verify bad/10
bad b/10 && sed -i '/model_tp1_pp0/d' bad/10/10.step
check_fails "verify: a shard missing" 1 '^evo-ckpt: bad/10: no model_tp1_pp0.evo \(its files make a tp 2, pp 2 layout\)$' \
    evo-ckpt verify bad/10
bad b/10 && cp bad/10/model_tp0_pp0.evo bad/10/model_tp0_pp1.evo && remark bad/10
check_fails "verify: a shard under another's name" 1 'bad/10/model_tp0_pp1.evo: offset 72: ranks tp 0/2, pp 0/2' \
    evo-ckpt verify bad/10
bad b/10 && poke bad/10/model_tp1_pp1.evo blocks.1.mlp.up.weight 5 nan
check_fails "verify: a NaN, named by file, tensor and element" 1 \
    '^evo-ckpt: bad/10/model_tp1_pp1.evo: tensor blocks.1.mlp.up.weight: element 5 is nan$' evo-ckpt verify bad/10
bad b/10 && poke bad/10/model_tp1_pp1.evo norm.weight 0 2
check_fails "verify: a replicated tensor that differs between tp ranks" 1 \
    'bad/10/model_tp1_pp1.evo: tensor norm.weight differs from its copy in bad/10/model_tp0_pp1.evo' evo-ckpt verify bad/10
bad b/10 && sed -i 's/"step": 10,/"step": 11,/' bad/10/state.json && remark bad/10
check_fails "verify: state.json of another step" 1 'bad/10/state.json: step 11, the checkpoint.s is 10' evo-ckpt verify bad/10
bad a/10 && poke bad/10/optimizer_tp0_pp0_zo0.evo adam.v.head.weight 3 -1
check_fails "verify: a negative second moment" 1 'tensor adam.v.head.weight: element 3 is -1$' evo-ckpt verify bad/10

# --- the marker is parsed as written, and steps are named as evo names them ------
bad b/10 && sed -i '1s/^\([0-9a-f]*\)  \([0-9]*\)  /\1  +\2  /' bad/10/10.step
check_fails "marker: a size with a sign" 1 'bad/10/10.step:1: want "<xxh3 hex>  <bytes>  <file>"' evo-ckpt verify bad/10
bad b/10 && sed -i '1s/^/0x/' bad/10/10.step
check_fails "marker: a hash with 0x" 1 'bad/10/10.step:1: want' evo-ckpt verify bad/10
bad b/10 && sed -i '1p' bad/10/10.step
check_fails "marker: a file listed twice" 1 '^evo-ckpt: bad/10/10.step:2: [^ ]* listed twice$' evo-ckpt verify bad/10
bad b/10 && awk 'NR <= 2 { l[NR] = $0 } END { print l[1]; print l[2]; print l[2]; print l[1] }' b/10/10.step >bad/10/10.step
check_fails "marker: the first line that repeats one is named" 1 \
    "^evo-ckpt: bad/10/10.step:3: $(sed -n '2s/.*  //p' b/10/10.step) listed twice\$" evo-ckpt verify bad/10
bad b/10 && sed -i '1s/$/\r/' bad/10/10.step
check_fails "marker: a carriage return" 1 'bad/10/10.step:1: want' evo-ckpt verify bad/10
bad b/10 && head -c 2000000 /dev/zero | tr '\0' 'a' >>bad/10/10.step
check_fails "marker: 2 MB is not a marker" 1 'bad/10/10.step: 2[0-9]+ bytes: not a completion marker' evo-ckpt verify bad/10
rm -rf lz && mkdir lz && cp -r a/10 lz/010 && mv lz/010/10.step lz/010/010.step
check "a step named with a leading zero is not a checkpoint" sh -c '! evo-ckpt ls lz 2>&1 | grep -Eq "^0?10 "'

# --- a save of the same step that died: the checkpoint it replaced comes back -------
rm -rf rs && mkdir rs && cp -r a/10 rs/.old-10-999999 && mkdir rs/10 && echo partial >rs/10/config.ini
out=$(evo-train --set ckpt.save_ckpt_folder=rs --set ckpt.auto_resume=false --set data.total_steps=1 tiny.ini 2>&1)
check "a dead replacing save: the old checkpoint is put back at the next save" test -f rs/10/10.step -a ! -e rs/.old-10-999999
check "a dead replacing save: what was put back verifies" evo-ckpt verify rs/10
