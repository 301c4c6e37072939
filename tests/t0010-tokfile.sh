#!/usr/bin/env bash
# The token file (evo-tokens(5)): round trip, --info, --decode, and readers
# that reject every truncated or corrupted file with a message, never a crash.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
head -n 300 "$EVO_ROOT/data/corpus/en.txt" >en.txt
head -n 100 "$EVO_ROOT/data/corpus/zh.txt" >zh.txt
cat en.txt zh.txt >in.txt

check "tokenize to a file" evo-tokenize -q -t "$M" -o in.tok in.txt
# Section table at 64 + 128 (meta): every section offset is a multiple of 64.
u64() { od -An -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
check "starts with the magic" test "$(head -c 7 in.tok)" = EVOTOKS
check "sections are 64-byte aligned" test $(( $(u64 in.tok 200) % 64 + $(u64 in.tok 232) % 64 )) -eq 0
check "the header records the file size" test "$(u64 in.tok 16)" -eq "$(stat -c %s in.tok)"
check "--info shows counts" sh -c "evo-tokenize --info in.tok | grep -q '^documents: *400$'"
check "--info shows the histogram" sh -c "evo-tokenize --info in.tok | grep -q 'histogram'"
check "stdout and file outputs are identical" sh -c "evo-tokenize -q -t '$M' in.txt | cmp - in.tok"
check "--decode gives the text back" sh -c "evo-tokenize --decode -t '$M' in.tok | cmp - in.txt"
check "--ids agrees with the token file" sh -c \
    "evo-tokenize -q -t '$M' --ids in.txt >ids.txt && test \$(wc -l <ids.txt) -eq 400"

# Empty input: a valid, empty token file.
check "empty input gives a valid empty file" sh -c \
    "evo-tokenize -q -t '$M' -o empty.tok </dev/null && evo-tokenize --info empty.tok | grep -q '^documents: *0$'"

# Truncation at every interesting length, and single-byte corruption
# everywhere: each must fail cleanly (exit 1, file named with PATTERN, no
# sanitizer report). rejects FILE PATTERN prints what went wrong, if anything.
rejects() {
    local out rc
    out=$(evo-tokenize --info "$1" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 1 ] || ! printf '%s' "$out" | grep -q "$2" || printf '%s' "$out" | grep -q Sanitizer; then
        echo "    rc=$rc $out"
    fi
}
size=$(stat -c %s in.tok)
bad=$(for n in 0 1 7 8 63 64 100 127 128 200 255 256 300 $((size / 2)) $((size - 64)) $((size - 1)); do
    head -c "$n" in.tok >trunc.tok
    rejects trunc.tok '^evo-tokenize: trunc.tok: '
done)
[ -z "$bad" ] && pass "truncated files are rejected with the file named" || fail "truncated files" "$bad"
bad=$(for off in 0 5 8 12 16 24 32 36 64 68 72 76 80 88 96 104 192 200 208 216 224 232 240 248 256 264 280 $(seq 128 $((size / 150 + 1)) "$((size - 1))"); do
    cp in.tok flip.tok
    printf '\xa5' | dd of=flip.tok bs=1 seek="$off" conv=notrunc status=none
    cmp -s in.tok flip.tok || rejects flip.tok 'flip.tok: offset [0-9]*: '
done)
[ -z "$bad" ] && pass "corrupted bytes are rejected with file and offset" || fail "corrupted files" "$bad"
check_fails "not a token file" 1 "not a EVOTOKS file" evo-tokenize --info en.txt
