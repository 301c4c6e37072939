#!/usr/bin/env bash
# Inputs at the limits the formats allow, and memory running out:
# - a header with a vocabulary of 2^31 - 1 ids (tests/c/tokens-forge):
#   read, packed, and refused by evo-train as too big for memory, cleanly;
# - a document longer than seq_len x micro_bsz x 1000 tokens: packed whole
#   into rows, nothing lost;
# - 10^7 tiny documents (10^6 under the sanitizers): tokenized and packed,
#   every document and token accounted for, peak memory as evo-tokenize(1)
#   and evo-pack(1) state it;
# - a 24 MB line of text: tokenized in bounded memory;
# - ulimit -v: evo-train with too little for OpenBLAS (which would hang),
#   evo-train with a model bigger than the limit, evo-tokenize
#   with a JSONL record bigger than the limit, evo-ckpt and evo-convert2hf
#   with too little to map their inputs: each exits 1 with one line saying
#   what did not fit, and leaves no output and no temporary.
. "$(dirname "$0")/lib.sh"
tiny_training
model=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# peak KB RSS of a command (GNU time's %M), its status kept
peak() { /usr/bin/time -f '%M' -o peak.kb "$@"; }

"$EVO_TESTBIN/tokens-forge" big.tok 2147483647 3 100
check "a vocabulary of 2^31 - 1 ids: the header reads" sh -c 'evo-tokenize --info big.tok | grep -q "vocab size: *2147483647"'
check "a vocabulary of 2^31 - 1 ids: packed" evo-pack -q -s 32 -b 2 -o big.pack big.tok
# (not under ASan, which reports a 1.6 TB request itself)
if [ -z "${EVO_SANITIZED:-}" ]; then
    check_fails "a vocabulary of 2^31 - 1 ids: evo-train says it does not fit in memory" 1 \
        'out of memory allocating [0-9]+ bytes' \
        evo-train -q --set data.train_folder=big.pack --set model.vocab_size=2147483647 --set ckpt.save_ckpt_folder=v tiny.ini
    check "... and wrote nothing" test ! -e v
fi

# One document of 70000 tokens into rows of 32 x 2 (1000 x 64 = 64000).
"$EVO_TESTBIN/tokens-forge" long.tok 8000 1 70000
evo-pack -q -s 32 -b 2 --keep-tail -o long.pack long.tok
check "a document of 70000 tokens > seq_len x micro_bsz x 1000: packed whole (70000 tokens in rows)" \
    sh -c 'evo-pack --info long.pack | grep -Eq "^tokens: +70000 in rows"'

n=10000000
[ -n "${EVO_SANITIZED:-}" ] && n=1000000
seq 1 "$n" >many.txt
peak evo-tokenize -q -t "$model" -o many.tok many.txt
tok_kb=$(cat peak.kb)
peak evo-pack -q -s 32 -b 2 --keep-tail -o many.pack many.tok
pack_kb=$(cat peak.kb)
docs=$(evo-tokenize --info many.tok | sed -n 's/^documents: *//p')
tokens=$(evo-tokenize --info many.tok | sed -n 's/^tokens: *\([0-9]*\).*/\1/p')
if [ "$docs" = "$n" ] && evo-pack --info many.pack | grep -Eq "^tokens: +$tokens in rows" &&
    evo-pack --info many.pack | grep -Eq "^documents: +$n begun"; then
    pass "$n tiny documents: tokenized and packed, all $tokens tokens in rows (peak $((tok_kb / 1024)) MB and $((pack_kb / 1024)) MB)"
else
    fail "$n tiny documents: tokenized and packed" "documents $docs, tokens $tokens"
fi
if [ -z "${EVO_SANITIZED:-}" ]; then # the bounds the man pages state: 16 and 32 bytes a document, 64 MB besides
    check "evo-tokenize: peak memory within 64 MB + 16 bytes a document ($((tok_kb / 1024)) MB)" \
        test "$tok_kb" -le $((65536 + n * 16 / 1024))
    check "evo-pack: peak memory within 64 MB + 32 bytes a document ($((pack_kb / 1024)) MB)" \
        test "$pack_kb" -le $((65536 + n * 32 / 1024))
fi

{
    for i in 1 2 3 4 5 6 7 8 9 10; do tr '\n' ' ' <"$EVO_ROOT/data/corpus/en.txt"; done | head -c 24000000
    echo
} >line24.txt
peak evo-tokenize -q -t "$model" -o line.tok line24.txt
check "a 24 MB line: one document, tokenized in $(($(cat peak.kb) / 1024)) MB (bounded: read in 256 KB pieces)" \
    sh -c "evo-tokenize --info line.tok | grep -Eq '^documents: +1\$' && [ $(cat peak.kb) -le 131072 ]"

# Memory running out (ulimit -v: address space, in KB). Not under the
# sanitizers, whose shadow memory needs terabytes of address space.
if [ -n "${EVO_SANITIZED:-}" ]; then exit 0; fi
no_output() { # DIR: nothing but what was there before (no output, no temporary)
    [ -z "$(find "$1" -mindepth 1 -newer stamp -print -quit)" ]
}
limited() { # KB NAME PATTERN CMD...: exits 1, one line matching PATTERN, nothing new under out/
    local kb=$1 name=$2 pattern=$3 rc
    shift 3
    rm -rf out && mkdir out && touch stamp
    (ulimit -v "$kb" && exec "$@") 2>err >/dev/null
    rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] && grep -Eq "$pattern" err && no_output out; then
        pass "$name"
    else
        fail "$name" "exit $rc: $(cat err) $(ls -A out)"
    fi
}
# OpenBLAS 0.3.21 retries a failed mmap of its per-thread buffers forever:
# evo-train refuses such a limit before OpenBLAS loads (it used to hang).
limited 300000 "ulimit -v 300 MB, too little for OpenBLAS: evo-train exits 1 at once naming the limit it needs" \
    'evo-train: ulimit -v 300000 is too small: OpenBLAS hangs without [0-9]+ MiB more .*ulimit -v [0-9]+ in all' \
    timeout -s KILL 60 evo-train -q --set ckpt.checkpoint_every=1 --set ckpt.save_ckpt_folder=out/ck tiny.ini
limited 100000 "ulimit -v 100 MB: evo-train --version exits 1 too, rather than hang" \
    'evo-train: ulimit -v 100000 is too small' timeout -s KILL 60 evo-train --version
# 600-650 MB left room for the 512-wide model but not for the first matmul's
# buffer, where evo-train hung (1 thread): OpenBLAS's buffers now come first.
limited 620000 "ulimit -v 620 MB, room for OpenBLAS, not for a 512-wide model too: out of memory in evo's allocation, no hang" \
    'out of memory' timeout -s KILL 60 evo-train -q --set model.hidden_size=512 --set model.num_layers=4 \
    --set model.num_attention_heads=8 --set ckpt.checkpoint_every=1 --set ckpt.save_ckpt_folder=out/ck tiny.ini
limited 1500000 "ulimit -v 1.5 GB, a 1024-wide 8-layer model: evo-train exits 1, out of memory, no checkpoint" \
    'out of memory allocating' evo-train -q --set model.hidden_size=1024 --set model.num_layers=8 \
    --set model.num_attention_heads=8 --set ckpt.checkpoint_every=1 --set ckpt.save_ckpt_folder=out/ck tiny.ini
/usr/bin/python3 -c 'import sys; sys.stdout.write("{\"text\": \"" + "word " * 40000000 + "\"}\n")' >huge.jsonl
limited 400000 "ulimit -v 400 MB, a 200 MB JSONL record: evo-tokenize exits 1, out of memory, no output" \
    'out of memory' evo-tokenize -q -t "$model" -o out/h.tok huge.jsonl
# a 20M-parameter checkpoint: 250 MB with its optimizer state
evo-train -q --set model.hidden_size=512 --set model.num_layers=4 --set model.num_attention_heads=8 \
    --set data.total_steps=1 --set ckpt.checkpoint_every=1 --set ckpt.save_ckpt_folder=ck tiny.ini
limited 150000 "ulimit -v 150 MB, a 250 MB checkpoint: evo-ckpt reshard exits 1 naming the file it could not map" \
    'evo-ckpt: ck/1/.*: mmap: Cannot allocate memory' evo-ckpt reshard ck/1 --tp 2 -o out/r/1
limited 150000 "ulimit -v 150 MB, a 250 MB checkpoint: evo-convert2hf exits 1 naming what did not fit" \
    'evo-convert2hf: .*(Cannot allocate memory|out of memory)' evo-convert2hf ck/1 -o out/hf -t "$model"
