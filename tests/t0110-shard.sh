#!/usr/bin/env bash
# evo-tokenize --shard I/N and evo-pack of the parts: in order, the parts
# hold exactly the documents and ids of one run (plain, JSONL, compressed
# and archived inputs), and the parts pack into the same rows as the one
# token file; --shard auto as a Slurm job array task, under the local Slurm.
. "$(dirname "$0")/lib.sh"
use_local_slurm
tok=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
c=$EVO_ROOT/data/corpus
if [ -n "${EVO_SANITIZED:-}" ]; then # the sanitizers are 5x slower: a sample
    head -n 400 "$c/en.txt" >en.txt
    head -n 200 "$c/code.jsonl" >code.jsonl
else
    cp "$c/en.txt" en.txt
    cp "$c/code.jsonl" code.jsonl
fi
head -n 200 "$c/zh.txt" >zh.txt
zstd -q en.txt -o en.txt.zst
gzip -k code.jsonl
tar cf mix.tar zh.txt code.jsonl.gz
head -c 50000 en.txt >plain.txt
inputs=(plain.txt en.txt.zst mix.tar code.jsonl)

check "one run: --ids of every input" sh -c "evo-tokenize -q -t '$tok' --ids ${inputs[*]} >all.ids"
check "one run: the token file" evo-tokenize -q -t "$tok" -o all.tok "${inputs[@]}"
for n in 1 2 3 7; do
    rm -f part*.ids
    for i in $(seq 0 $((n - 1))); do
        evo-tokenize -q -t "$tok" --ids --shard "$i/$n" "${inputs[@]}" >part$i.ids
    done
    check "--shard I/$n: the parts, in order, hold the one run's documents and ids" \
        cmp all.ids <(for i in $(seq 0 $((n - 1))); do cat part$i.ids; done)
done
check "--shard: no document in two parts, none lost ($(wc -l <all.ids) documents)" \
    test "$(cat part*.ids | wc -l)" = "$(wc -l <all.ids)"
for i in 0 1 2; do
    evo-tokenize -q -t "$tok" --shard "$i/3" -o p$i.tok "${inputs[@]}"
done
check "--info: a part says which" grep -q '^shard:         1 of 3 (--shard 1/3)$' <(evo-tokenize --info p1.tok)
check "--info: a whole run says nothing of shards" sh -c "! evo-tokenize --info all.tok | grep -q shard"

# evo-pack: the parts of one --shard run, in order, are the input they came from
evo-pack -q -s 64 -b 2 --valid 0.05 --valid-out all-valid.pack -o all.pack all.tok
evo-pack -q -s 64 -b 2 --valid 0.05 --valid-out parts-valid.pack -o parts.pack p0.tok p1.tok p2.tok
check "evo-pack of the 3 parts: the rows of the one token file" \
    cmp <(evo-pack --dump all all.pack) <(evo-pack --dump all parts.pack)
check "evo-pack of the 3 parts: the same validation rows" \
    cmp <(evo-pack --dump all all-valid.pack) <(evo-pack --dump all parts-valid.pack)
mkdir parts
for i in $(seq 0 10); do
    evo-tokenize -q -t "$tok" --shard "$i/11" -o parts/part-$i.tok "${inputs[@]}"
done
evo-pack -q -s 64 -b 2 -o glob.pack 'parts/part-*.tok'
evo-pack -q -s 64 -b 2 -o plain.pack all.tok
check "evo-pack 'parts/part-*.tok' (11 parts, in natural order): the one file's rows" \
    cmp <(evo-pack --dump all plain.pack) <(evo-pack --dump all glob.pack)
check_fails "evo-pack: a pattern that matches nothing" 2 'nothing/\*.tok: no file matches' \
    evo-pack -q -o x.pack 'nothing/*.tok'
evo-pack -q -s 64 -b 2 -o some.pack p0.tok p2.tok
check "evo-pack of parts 0 and 2 of 3: two inputs, packed each on its own" \
    test "$(evo-pack --info some.pack | grep -c '^source')" = 2

# A header that lies about its part (its checksum recomputed, so only the
# field's own check can catch it): refused, naming file and offset.
sethdr() {
    /usr/bin/python3 -c '
import struct, sys, xxhash
b = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<HH", b, 64 + 20, int(sys.argv[3]), int(sys.argv[4]))
hsize = struct.unpack_from("<I", b, 12)[0]
struct.pack_into("<Q", b, 24, xxhash.xxh3_64_intdigest(bytes(b[:24]) + bytes(8) + bytes(b[32:hsize])))
open(sys.argv[2], "wb").write(b)' "$@"
}
sethdr p1.tok lie.tok 3 3
check_fails "a token file saying part 3 of 3" 1 'lie.tok: offset 84: shard 3 of 3' evo-tokenize --info lie.tok
sethdr p1.tok lie0.tok 1 0
check_fails "a token file saying part 1 of none" 1 'lie0.tok: offset 84: shard 1 of 0' evo-pack -q -o x.pack lie0.tok
sethdr p1.tok ok.tok 2 5
check "the same rewrite with an honest part reads back" grep -q '^shard:         2 of 5' <(evo-tokenize --info ok.tok)

# refusals
check_fails "--shard of stdin" 1 '--shard needs regular files' sh -c "evo-tokenize -q -t '$tok' --shard 0/2 - <plain.txt"
check_fails "--shard 3/3" 2 'I from 0 to N-1' evo-tokenize -q -t "$tok" --shard 3/3 plain.txt
check_fails "--shard 0/0" 2 'N must be 1 to 65535' evo-tokenize -q -t "$tok" --shard 0/0 plain.txt
check_fails "--shard half" 2 "wants I/N" evo-tokenize -q -t "$tok" --shard half plain.txt
check_fails "--shard auto outside a job array" 2 'not a Slurm job array task' \
    env -u SLURM_ARRAY_TASK_ID evo-tokenize -q -t "$tok" --shard auto plain.txt
check_fails "--shard auto on an unevenly stepped array" 2 'not MIN 1 \+ k x STEP 2' \
    env SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=3 \
    evo-tokenize -q -t "$tok" --shard auto plain.txt
env SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_MIN=3 SLURM_ARRAY_TASK_STEP=2 SLURM_ARRAY_TASK_COUNT=4 \
    evo-tokenize -q -t "$tok" --shard auto -o stepped.tok plain.txt
check "--shard auto: task 7 of --array=3-9:2 is part 2 of 4" grep -q '^shard:         2 of 4' \
    <(evo-tokenize --info stepped.tok)

# A real job array under the local Slurm: 4 tasks, then the pack.
if [ -n "${SLURM_CONF:-}" ]; then
    check "sbatch --array=0-3: evo-tokenize --shard auto in every task" timeout 300 sbatch --wait --quiet \
        --array=0-3 --output=/dev/null --chdir="$T" \
        --wrap "PATH='$EVO_BIN:$PATH' evo-tokenize -q -t '$tok' --shard auto -o arr-\$SLURM_ARRAY_TASK_ID.tok ${inputs[*]}"
    evo-pack -q -s 64 -b 2 -o arr.pack arr-0.tok arr-1.tok arr-2.tok arr-3.tok
    check "the job array's 4 parts pack into the one file's rows" \
        cmp <(evo-pack --dump all plain.pack) <(evo-pack --dump all arr.pack)
elif [ -n "${CI:-}" ]; then
    fail "the job array test needs the local Slurm in CI (scripts/slurm-local-cluster up)"
fi
