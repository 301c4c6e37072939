#!/usr/bin/env bash
# Long documents: a document streamed in pieces gives the ids of the whole,
# memory stays bounded, and a long word does not blow up quadratically.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
# ~24 MB on one line: the corpus joined with spaces, then a few newlines.
reps=5; [ -n "${EVO_SANITIZED:-}" ] && reps=1
for i in $(seq $reps); do tr '\n' ' ' <"$EVO_ROOT/data/corpus/en.txt"; done >long.txt
echo >>long.txt
tr '\n' ' ' <"$EVO_ROOT/data/corpus/en.txt" | fold -w 2000 -s >short.txt
reference b.ids long.txt spm_encode --model="$M" --output_format=id
check "a $((reps * 3)) MB line streamed in pieces equals spm_encode on it" sh -c \
    "evo-tokenize -q -t '$M' --ids --no-bos --no-eos long.txt >a.ids && cmp a.ids b.ids"
if [ -z "${EVO_SANITIZED:-}" ] && command -v /usr/bin/time >/dev/null; then
    # Peak RSS must not grow with the length of the line: 5 MB vs 15 MB.
    head -c 5000000 long.txt >mid.txt && echo >>mid.txt
    rss() { { /usr/bin/time -f %M evo-tokenize -q -t "$M" -o out.tok "$1"; } 2>&1 | tail -n 1; }
    small=$(rss mid.txt) big=$(rss long.txt)
    if [ $((big - small)) -lt 2500 ]; then
        pass "peak RSS flat in line length: ${small} KB (5 MB line), ${big} KB (15 MB line)"
    else
        fail "memory grows with the line: ${small} KB (5 MB line), ${big} KB (15 MB line)"
    fi
fi
# A 2 MB word: time must stay within a few times that of 2 MB of ordinary text.
head -c 2000000 /dev/zero | tr '\0' 'a' >word.txt; echo >>word.txt
head -c 2000000 short.txt >norm.txt
t() { local s=$(date +%s%N); evo-tokenize -q -t "$M" -j 1 -o /dev/null "$1"; echo $(( ($(date +%s%N) - s) / 1000000 )); }
tw=$(t word.txt); tn=$(t norm.txt)
if [ "$tw" -le $((tn * 4 + 200)) ]; then pass "2 MB word: ${tw} ms vs ${tn} ms for 2 MB of text"; else fail "long word is slow: ${tw} ms vs ${tn} ms"; fi
reference word.ids word.txt spm_encode --model="$M" --output_format=id
check "the long word matches spm_encode" sh -c \
    "evo-tokenize -q -t '$M' --ids --no-bos --no-eos word.txt | cmp - word.ids"
