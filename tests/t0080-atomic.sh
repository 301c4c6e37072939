#!/usr/bin/env bash
# Output is atomic: a failed or interrupted run never leaves a file that
# looks complete, and an existing output survives a failed overwrite.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
cat "$EVO_ROOT/data/corpus/en.txt" "$EVO_ROOT/data/corpus/en.txt" >in.txt
evo-tokenize -q -t "$M" -o old.tok "$EVO_ROOT/data/corpus/zh.txt"
cp old.tok keep.tok
# Disk full: a 64 KB file-size limit makes the write fail (EFBIG) midway.
out=$(bash -c "trap '' XFSZ; ulimit -f 64; exec evo-tokenize -q -t '$M' -o old.tok in.txt" 2>&1)
rc=$?
if [ $rc -eq 1 ] && printf '%s' "$out" | grep -q 'old.tok: write failed'; then pass "a full disk is a clean error"; else fail "disk full" "rc=$rc $out"; fi
check "the previous file is untouched" cmp old.tok keep.tok
check "no temporary is left behind" sh -c "! ls -a | grep -q 'tmp-'"
# Killed midway.
evo-tokenize -q -t "$M" -j 1 -o killed.tok in.txt in.txt in.txt & pid=$!
sleep 0.3; kill -TERM $pid; wait $pid 2>/dev/null
check "SIGTERM leaves no output and no temporary" sh -c "test ! -e killed.tok && ! ls -a | grep -q 'tmp-'"
check_fails "an unwritable directory is a clean error" 1 "no-such-dir/x.tok: cannot create" evo-tokenize -q -t "$M" -o no-such-dir/x.tok in.txt
