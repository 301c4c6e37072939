#!/usr/bin/env bash
# evo-pack: InternEvo's packing (PackedDataset), checked by hand on small
# cases, against tests/pack-model.py on thousands of random documents, for
# determinism, and on bad input.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
M4=$EVO_ROOT/data/tokenizer/evo-bpe4k-nfkc.model
PY=/usr/bin/python3
# model ARGS...: tests/pack-model.py's rows. They depend only on the model,
# its arguments and the input files, so they are kept in build/test-cache
# and the sanitizer pass of make check-all does not compute them again.
model() {
    local key a dir=$EVO_ROOT/build/test-cache
    key=$({
        sha256sum <"$EVO_ROOT/tests/pack-model.py"
        for a in "$@"; do
            printf '%s\n' "$a"
            [ -f "${a%:*}" ] && sha256sum <"${a%:*}"
        done
    } | sha256sum | cut -c1-32)
    mkdir -p "$dir"
    if [ ! -s "$dir/pack-$key" ]; then
        "$PY" "$EVO_ROOT/tests/pack-model.py" "$@" >"$dir/pack-$key.tmp" &&
            mv "$dir/pack-$key.tmp" "$dir/pack-$key" || { cat "$dir/pack-$key.tmp"; rm -f "$dir/pack-$key.tmp"; return 1; }
    fi
    cat "$dir/pack-$key"
}

# tok NAME: NAME.txt (one document per line of ids, -ID = context only) to NAME.tok.
tok() { evo-tokenize -q -t "$M" -f ids "$1.txt" -o "$1.tok"; }
# dump OUT ARGS...: evo-pack ARGS -o OUT.pack, then its --dump all into OUT.
dump() {
    local out=$1
    shift
    evo-pack -q "$@" -o "$out.pack" && evo-pack --dump all "$out.pack" >"$out"
}
# expect NAME ARGS... <<EOF (the dump, by hand): evo-pack ARGS must print it,
# and so must the model.
expect() {
    local name=$1
    shift
    cat >want.txt
    if dump got.txt "$@"; then same_ids "$name" want.txt got.txt; else fail "$name" "evo-pack failed"; fi
    model "$@" >model.txt 2>&1
    same_ids "$name (model)" want.txt model.txt
}
# agree NAME ARGS...: evo-pack --dump all and the model print the same rows
# (and the same validation rows when ARGS has --valid-out v.pack).
agree() {
    local name=$1
    shift
    model "$@" >model.txt 2>&1 || { fail "$name" "the model failed: $(tail -3 model.txt)"; return; }
    if ! dump got.txt "$@"; then fail "$name" "evo-pack failed"; return; fi
    same_ids "$name" model.txt got.txt
    case " $* " in *" --valid-out v.pack "*)
        model --show-valid "$@" >model-v.txt 2>&1
        evo-pack --dump all v.pack >got-v.txt
        same_ids "$name, validation rows" model-v.txt got-v.txt ;;
    esac
}

# fails_cleanly NAME PATTERN CMD...: CMD exits 1 or 2 (the spec leaves which
# open) with one line on stderr, `evo-pack: ...` matching PATTERN (a usage
# error may add the "Try 'evo-pack --help'" line), and no sanitizer report.
fails_cleanly() {
    local name=$1 pattern=$2 out rc
    shift 2
    out=$("$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ge 1 ] && [ $rc -le 2 ] && printf '%s\n' "$out" | head -1 | grep -Eq -- "^evo-pack: .*($pattern)" &&
        [ "$(printf '%s\n' "$out" | grep -vc "^Try 'evo-pack --help'")" -eq 1 ]; then
        pass "$name"
    else
        fail "$name" "exit $rc (want 1 or 2), stderr: $out"
    fi
}

# --- InternEvo's example (doc/code-docs data_flow.rst): micro_bsz 2, seq_len 8,
# documents of 4, 7, 8 and 5 tokens (49731 and 9725 made < 8000).
cat >ex.txt <<'EOF'
2323 442 252 341
233 3442 322 31 2514 4973 51
4326 427 465 22 314 972 55 66
71 72 73 74 75
EOF
tok ex
check "ids become a token file of 4 documents" sh -c "evo-tokenize --info ex.tok | grep -q '^documents: *4$'"
# Seed 5 shuffles 4 (and 2 and 3) documents into file order: the rows of the
# InternEvo documentation, the tail (doc 2's last 3 tokens and doc 3) dropped.
expect "InternEvo's example (order 0 1 2 3)" -s 8 -b 2 --seed 5 ex.tok <<'EOF'
row 0: 16 tokens, 3 segments, 14 labels, 0 pad
cu_seqlens 0 4 11 16
tokens 2323 442 252 341 233 3442 322 31 2514 4973 51 4326 427 465 22 314
labels 442 252 341 -100 3442 322 31 2514 4973 51 -100 427 465 22 314 972
positions 0 1 2 3 0 1 2 3 4 5 6 0 1 2 3 4
EOF
# The default seed 1024 shuffles them to 0 2 1 3.
check "seed 1024 shuffles 4 documents to 0 2 1 3" test "$("$PY" -c '
import numpy as np; i = np.arange(4); np.random.RandomState(1024).shuffle(i); print(*i)')" = "0 2 1 3"
expect "InternEvo's example, default seed (order 0 2 1 3)" -s 8 -b 2 ex.tok <<'EOF'
row 0: 16 tokens, 3 segments, 14 labels, 0 pad
cu_seqlens 0 4 12 16
tokens 2323 442 252 341 4326 427 465 22 314 972 55 66 233 3442 322 31
labels 442 252 341 -100 427 465 22 314 972 55 66 -100 3442 322 31 2514
positions 0 1 2 3 0 1 2 3 4 5 6 7 0 1 2 3
EOF
expect "--keep-tail pads the last row as one segment" -s 8 -b 2 --seed 5 --keep-tail ex.tok <<'EOF'
row 0: 16 tokens, 3 segments, 14 labels, 0 pad
cu_seqlens 0 4 11 16
tokens 2323 442 252 341 233 3442 322 31 2514 4973 51 4326 427 465 22 314
labels 442 252 341 -100 3442 322 31 2514 4973 51 -100 427 465 22 314 972
positions 0 1 2 3 0 1 2 3 4 5 6 0 1 2 3 4

row 1: 16 tokens, 3 segments, 6 labels, 8 pad
cu_seqlens 0 3 8 16
tokens 972 55 66 71 72 73 74 75 0 0 0 0 0 0 0 0
labels 55 66 -100 72 73 74 75 -100 -100 -100 -100 -100 -100 -100 -100 -100
positions 0 1 2 0 1 2 3 4 0 1 2 3 4 5 6 7
EOF
expect "--pack-into-one: fixed windows, -100 at every piece end" -s 8 -b 2 --seed 5 --pack-into-one ex.tok <<'EOF'
row 0: 16 tokens, 2 segments, 13 labels, 0 pad
cu_seqlens 0 8 16
tokens 2323 442 252 341 233 3442 322 31 2514 4973 51 4326 427 465 22 314
labels 442 252 341 -100 3442 322 31 2514 4973 51 -100 427 465 22 314 -100
positions 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
EOF

# --- One rule at a time.
# A document longer than seq_len: seq_len windows whose labels continue across
# the window cut and the row edge; the last token of the document is -100.
seq 101 114 | paste -sd' ' >long.txt
tok long
expect "windows of seq_len; labels cross windows and rows" -s 4 -b 3 --keep-tail long.tok <<'EOF'
row 0: 12 tokens, 3 segments, 12 labels, 0 pad
cu_seqlens 0 4 8 12
tokens 101 102 103 104 105 106 107 108 109 110 111 112
labels 102 103 104 105 106 107 108 109 110 111 112 113
positions 0 1 2 3 0 1 2 3 0 1 2 3

row 1: 12 tokens, 2 segments, 1 labels, 10 pad
cu_seqlens 0 2 12
tokens 113 114 0 0 0 0 0 0 0 0 0 0
labels 114 -100 -100 -100 -100 -100 -100 -100 -100 -100 -100 -100
positions 0 1 0 1 2 3 4 5 6 7 8 9
EOF
expect "--pack-into-one cuts the label at the row edge" -s 4 -b 3 --pack-into-one --keep-tail long.tok <<'EOF'
row 0: 12 tokens, 3 segments, 11 labels, 0 pad
cu_seqlens 0 4 8 12
tokens 101 102 103 104 105 106 107 108 109 110 111 112
labels 102 103 104 105 106 107 108 109 110 111 112 -100
positions 0 1 2 3 0 1 2 3 0 1 2 3

row 1: 12 tokens, 3 segments, 1 labels, 10 pad
cu_seqlens 0 4 8 12
tokens 113 114 0 0 0 0 0 0 0 0 0 0
labels 114 -100 -100 -100 -100 -100 -100 -100 -100 -100 -100 -100
positions 0 1 2 3 0 1 2 3 0 1 2 3
EOF
printf '5 6\n7 8 9\n1\n\n' >short.txt
tok short
expect "--min-length drops shorter documents" -s 3 --min-length 3 short.tok <<'EOF'
row 0: 3 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 3
tokens 7 8 9
labels 8 9 -100
positions 0 1 2
EOF
seq 11 17 | paste -sd' ' >seven.txt
tok seven
expect "--max-doc-len splits into documents of their own" -s 3 --seed 5 --max-doc-len 3 --keep-tail seven.tok <<'EOF'
row 0: 3 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 3
tokens 11 12 13
labels 12 13 -100
positions 0 1 2

row 1: 3 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 3
tokens 14 15 16
labels 15 16 -100
positions 0 1 2

row 2: 3 tokens, 2 segments, 0 labels, 2 pad
cu_seqlens 0 1 3
tokens 17 0 0
labels -100 -100 -100
positions 0 0 1
EOF
printf '1 2 3\n' >three.txt
tok three
expect "--epochs 2 repeats the stream without a cut between epochs" -s 2 --epochs 2 three.tok <<'EOF'
row 0: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 1 2
labels 2 3
positions 0 1

row 1: 2 tokens, 2 segments, 1 labels, 0 pad
cu_seqlens 0 1 2
tokens 3 1
labels -100 2
positions 0 0

row 2: 2 tokens, 1 segments, 1 labels, 0 pad
cu_seqlens 0 2
tokens 2 3
labels 3 -100
positions 0 1
EOF
# SFT: -ID is a context-only token. It is fed as ID, and predicting it is
# not trained; id 0 is an ordinary target (InternEvo's t > 0 masks it too).
printf '5 -6 -7 8 0 0 9\n' >sft.txt
tok sft
expect "context-only tokens are never labels; id 0 is" -s 7 sft.tok <<'EOF'
row 0: 7 tokens, 1 segments, 4 labels, 0 pad
cu_seqlens 0 7
tokens 5 6 7 8 0 0 9
labels -100 -100 8 0 0 9 -100
positions 0 1 2 3 4 5 6
EOF
printf '\n\n31 32 33\n\n' >empty-docs.txt
tok empty-docs
expect "empty documents emit nothing" -s 2 --keep-tail empty-docs.tok <<'EOF'
row 0: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 31 32
labels 32 33
positions 0 1

row 1: 2 tokens, 2 segments, 0 labels, 1 pad
cu_seqlens 0 1 2
tokens 33 0
labels -100 -100
positions 0 0
EOF
# Mixing: draw from the input furthest behind its weight (ties: the first).
# a (1 2) weight 1, b (3 4) weight 3, 16 tokens: a b b b a b b b.
printf '1 2\n' >a.txt
printf '3 4\n' >b.txt
tok a && tok b
expect "weighted mixing follows the weights" -s 2 -b 2 --tokens 16 a.tok:1 b.tok:3 <<'EOF'
row 0: 4 tokens, 2 segments, 2 labels, 0 pad
cu_seqlens 0 2 4
tokens 1 2 3 4
labels 2 -100 4 -100
positions 0 1 0 1

row 1: 4 tokens, 2 segments, 2 labels, 0 pad
cu_seqlens 0 2 4
tokens 3 4 3 4
labels 4 -100 4 -100
positions 0 1 0 1

row 2: 4 tokens, 2 segments, 2 labels, 0 pad
cu_seqlens 0 2 4
tokens 1 2 3 4
labels 2 -100 4 -100
positions 0 1 0 1

row 3: 4 tokens, 2 segments, 2 labels, 0 pad
cu_seqlens 0 2 4
tokens 3 4 3 4
labels 4 -100 4 -100
positions 0 1 0 1
EOF
# Two unweighted inputs: packed one after the other, each with its own tail
# (three's last token is dropped, not joined to seven's first).
expect "unweighted inputs are packed one by one" -s 2 three.tok seven.tok --seed 5 <<'EOF'
row 0: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 1 2
labels 2 3
positions 0 1

row 1: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 11 12
labels 12 13
positions 0 1

row 2: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 13 14
labels 14 15
positions 0 1

row 3: 2 tokens, 1 segments, 2 labels, 0 pad
cu_seqlens 0 2
tokens 15 16
labels 16 17
positions 0 1
EOF

# --- Against the model on thousands of random documents.
n=4000
[ -n "${EVO_SANITIZED:-}" ] && n=400
# rand SEED N SEQ: N documents of 0..3*SEQ tokens (1 in 20 empty), a third of
# them SFT-like (a context-only prompt, then targets), a few context-only ids
# scattered elsewhere.
rand() {
    "$PY" - "$@" <<'PY'
import random, sys
seed, n, seq = map(int, sys.argv[1:])
r = random.Random(seed)
for _ in range(n):
    k = 0 if r.random() < 0.05 else r.randint(1, 3 * seq)
    ids = [r.randrange(8000) for _ in range(k)]
    if r.random() < 0.33:
        p = r.randint(0, k)
        ids = [-t for t in ids[:p]] + ids[p:]
    else:
        ids = [-t if r.random() < 0.02 else t for t in ids]
    print(" ".join(map(str, ids)))
PY
}
rand 1 "$n" 16 >x.txt && tok x
rand 2 $((n / 2)) 16 >y.txt && tok y
rand 3 $((n / 4)) 64 >z.txt && tok z
agree "random docs: default mode" -s 16 -b 2 x.tok
agree "random docs: --pack-into-one --keep-tail" -s 16 -b 3 --pack-into-one --keep-tail x.tok
agree "random docs: --min-length --max-doc-len --epochs 2" -s 8 -b 4 --seed 7 --min-length 5 --max-doc-len 20 --epochs 2 x.tok
agree "random docs: --valid 0.1" -s 32 --keep-tail --valid 0.1 --valid-out v.pack x.tok
agree "random docs: --valid 25, --epochs 3" -s 4 -b 4 --valid 25 --epochs 3 --valid-out v.pack y.tok
agree "random docs: three inputs, each its own tail" -s 16 -b 2 --keep-tail --valid 0.05 --valid-out v.pack x.tok y.tok z.tok
agree "random docs: weighted, --tokens" -s 16 -b 2 --tokens 50000 --valid 0.05 --valid-out v.pack x.tok:0.3 y.tok z.tok:2.5
agree "random docs: weighted, default budget, --pack-into-one" -s 8 -b 2 --pack-into-one --keep-tail --epochs 2 x.tok y.tok:2
agree "random docs: weighted, --max-doc-len --min-length" -s 16 --seed 99 --max-doc-len 10 --min-length 2 --tokens 20000 x.tok:1 z.tok:1

# Whole-corpus invariants (no model): every token of x in its rows, once.
dump all.txt -s 16 -b 2 --keep-tail x.tok
want=$(evo-tokenize --info x.tok | sed -n 's/^tokens: *\([0-9]*\).*/\1/p')
got=$(awk '/^row /{t += $3 - $9} END{print t}' all.txt)
check "--keep-tail packs every token once ($want)" test "$got" = "$want"
check "rows are all L tokens" sh -c "! grep '^row ' all.txt | grep -vq ': 32 tokens'"

# --- Determinism and stdin.
corpus_text c0.txt
head -n 1500 c0.txt >c.txt
evo-tokenize -q -t "$M" -o c.tok c.txt
check "-j 2 packs what -j 1 packs" sh -c "evo-pack -q -j 1 -s 64 -b 2 c.tok -o j1.pack && evo-pack -q -j 2 -s 64 -b 2 c.tok -o j2.pack && cmp j1.pack j2.pack"
check "--embed: -j 2 packs what -j 1 packs" sh -c "evo-pack -q -j 1 --embed -s 64 c.tok x.tok:2 -o e1.pack && evo-pack -q -j 2 --embed -s 64 c.tok x.tok:2 -o e2.pack && cmp e1.pack e2.pack"
check "the same run twice gives the same bytes" sh -c "evo-pack -q -s 64 -b 2 c.tok -o j1b.pack && cmp j1.pack j1b.pack"
evo-pack --dump all j1.pack >file.dump
check "stdin input gives the same rows" sh -c "cat c.tok | evo-pack -q -s 64 -b 2 - -o in.pack && evo-pack --dump all in.pack | cmp - file.dump"
check "--embed gives the same rows" sh -c "evo-pack -q --embed -s 64 -b 2 c.tok -o em.pack && evo-pack --dump all em.pack | cmp - file.dump"
cp c.tok moved.tok
evo-pack -q --embed -s 64 -b 2 moved.tok -o moved.pack
rm moved.tok
check "an embedded pack needs no source file" sh -c "evo-pack --dump all moved.pack | cmp - file.dump"
check "--dump N-M is those blocks of --dump all" bash -c \
    "evo-pack --dump 2-3 j1.pack | cmp - <(awk '/^row 2:/{p=1} /^row 4:/{exit} p' file.dump | sed '\$d')"

# --- --info and --dump with text.
evo-pack --info j1.pack >info.txt 2>&1
rows=$(grep -c '^row ' file.dump)
check "--info shows rows ($rows)" grep -Eiq "rows?[: ]+$rows\\b|\\b$rows rows" info.txt
check "--info shows seq_len and micro_bsz" sh -c "grep -Eiq 'seq.?len[: =]+64' info.txt && grep -Eiq 'micro.?bsz[: =]+2' info.txt"
check "--info shows tokens" grep -iq tokens info.txt
check "--info names the source" grep -q c.tok info.txt
check "--dump --tokenizer prints each segment's text" sh -c \
    "evo-pack --dump 0 --tokenizer '$M' j1.pack | grep -q '^text 0: \"'"
check "--dump --tokenizer: one text line per segment" sh -c \
    "test \$(evo-pack --dump 0 --tokenizer '$M' j1.pack | grep -c '^text ') -eq \$(evo-pack --dump 0 j1.pack | sed -n 's/^row 0: .* \\([0-9]*\\) segments.*/\\1/p')"
check "the validation pack is marked" sh -c "evo-pack -q -s 32 --valid 0.1 --valid-out vv.pack x.tok -o tt.pack && evo-pack --info vv.pack | grep -iq valid"

# --- Empty input: a valid pack of 0 rows.
: >none.txt
tok none
check "empty input gives a pack of 0 rows" sh -c "evo-pack -q none.tok -o none.pack && evo-pack --info none.pack | grep -Eiq 'rows?[: ]+0\\b|\\b0 rows'"
check "--dump all of 0 rows prints nothing" sh -c "test -z \"\$(evo-pack --dump all none.pack)\""
check "too few tokens for a row is 0 rows too" sh -c "evo-pack -q -s 100 three.tok -o few.pack && test -z \"\$(evo-pack --dump all few.pack)\""

# --- Bad input and usage.
check_fails "--seq-len 0 is a usage error" 2 "seq" evo-pack -s 0 x.tok -o bad.pack
check_fails "--micro-bsz 0 is a usage error" 2 "micro" evo-pack -b 0 x.tok -o bad.pack
check_fails "--seq-len abc is a usage error" 2 "." evo-pack -s abc x.tok -o bad.pack
fails_cleanly "an absurd row length (2^32) is refused" "." evo-pack -s 65536 -b 65536 x.tok -o bad.pack
check "nothing is written on a usage error" test ! -e bad.pack
check_fails "a missing input is named" 1 "^evo-pack: no-such.tok: " evo-pack no-such.tok -o bad.pack
size=$(stat -c %s x.tok)
head -c $((size / 2)) x.tok >trunc.tok
check_fails "a truncated token file is named" 1 "^evo-pack: trunc.tok: " evo-pack trunc.tok -o bad.pack
check_fails "a truncated token file (2nd input) is named" 1 "^evo-pack: trunc.tok: " evo-pack x.tok trunc.tok -o bad.pack
# A byte of the TOKENS section (section 1; its offset is in the section table at 64 + 128).
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
for i in 0 1 2; do [ "$(od -An -t u4 -j $((192 + 32 * i)) -N 4 x.tok | tr -d ' ')" = 1 ] && toks=$(u64 x.tok $((200 + 32 * i))); done
cp x.tok flip.tok
printf '\xa5' | dd of=flip.tok bs=1 seek=$((toks + 1001)) conv=notrunc status=none
check_fails "a corrupted token is named with its offset" 1 "^evo-pack: flip.tok: .*offset [0-9]+" evo-pack flip.tok -o bad.pack
check_fails "a text file is not a token file" 1 "^evo-pack: x.txt: " evo-pack x.txt -o bad.pack
check "nothing is written on bad input" test ! -e bad.pack
# Another tokenizer's ids do not mean the same text.
printf '1 2 3\n' >other.txt
evo-tokenize -q -t "$M4" -f ids other.txt -o other.tok
fx=$(evo-tokenize --info x.tok | sed -n 's/^fingerprint: *//p')
fo=$(evo-tokenize --info other.tok | sed -n 's/^fingerprint: *//p')
check_fails "different tokenizers are refused" 1 "^evo-pack: (x|other).tok: " evo-pack x.tok other.tok -o bad.pack
check_fails "the message shows both fingerprints" 1 "($fx.*$fo|$fo.*$fx)" evo-pack x.tok other.tok -o bad.pack
check_fails "different tokenizers are refused when mixing" 1 "other.tok" evo-pack x.tok:1 other.tok:2 -o bad.pack
# The source of a pack made without --embed must still be there for --dump.
cp x.tok gone.tok
evo-pack -q -s 16 gone.tok -o gone.pack
rm gone.tok
check_fails "a pack whose source is gone names it" 1 "gone.tok" evo-pack --dump 0 gone.pack
cp y.tok gone.tok
check_fails "a pack whose source was replaced names it" 1 "gone.tok" evo-pack --dump 0 gone.pack
check_fails "a pack file that is not one" 1 "^evo-pack: x.tok: " evo-pack --dump 0 x.tok
fails_cleanly "--dump past the last row" "999999" evo-pack --dump 999999 j1.pack
# Disk full: a 64 KB file-size limit makes the write fail midway.
evo-pack -q -s 64 --embed x.tok -o full.pack
cp full.pack keep.pack
out=$(bash -c "trap '' XFSZ; ulimit -f 64; exec evo-pack -q -s 64 --embed c.tok -o full.pack" 2>&1)
rc=$?
if [ $rc -eq 1 ] && printf '%s' "$out" | grep -q '^evo-pack: full.pack: '; then pass "a full disk is a clean error"; else fail "disk full" "rc=$rc $out"; fi
check "the previous pack is untouched" cmp full.pack keep.pack
check "no temporary is left behind" sh -c "! ls -a | grep 'pack.*tmp-'"

# --- Hostile pack files: --info and --dump validate before they read.
evo-pack -q -s 16 -b 2 x.tok -o good.pack
size=$(stat -c %s good.pack)
head -c $((size - 100)) good.pack >cut.pack
check_fails "a truncated pack is named, with the offset" 1 "^evo-pack: cut.pack: offset 16: header says" evo-pack --info cut.pack
cp good.pack flippack.pack
printf '\x5a' | dd of=flippack.pack bs=1 seek=$((size - 200)) conv=notrunc status=none
check_fails "a corrupted pack section fails its checksum" 1 "^evo-pack: flippack.pack: offset [0-9]+: checksum mismatch" \
    evo-pack --dump 0 flippack.pack
head -c 4096 /dev/urandom >noise.pack
check_fails "random bytes are not a pack" 1 "^evo-pack: noise.pack: offset 0: not a EVOPACK file" evo-pack --dump all noise.pack
check_fails "a token file is not a pack" 1 "not a EVOPACK file" evo-pack --info x.tok
