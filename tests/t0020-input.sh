#!/usr/bin/env bash
# Inputs: plain, compressed and archived files, stdin, JSONL fields, chat
# data with a loss mask, and the errors a user meets on bad input.
. "$(dirname "$0")/lib.sh"
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
tok() { evo-tokenize -q -t "$M" "$@"; }
head -n 200 "$EVO_ROOT/data/corpus/en.txt" >docs.txt
tok --ids docs.txt >want.ids

check "stdin is the default input" sh -c "evo-tokenize -q -t '$M' --ids <docs.txt | cmp - want.ids"
check "- is stdin" sh -c "evo-tokenize -q -t '$M' --ids - <docs.txt | cmp - want.ids"
for z in gzip zstd xz bzip2; do
    $z -c docs.txt >docs.txt.$z
    check "$z input is detected from content" sh -c "evo-tokenize -q -t '$M' --ids docs.txt.$z | cmp - want.ids"
done
check "compressed stdin" sh -c "evo-tokenize -q -t '$M' --ids <docs.txt.zstd | cmp - want.ids"

mkdir -p tree/sub && split -l 100 docs.txt tree/sub/part.
tar -cf docs.tar -C tree sub && tar -czf docs.tgz -C tree sub
(cd tree && zip -qr ../docs.zip sub)
for a in docs.tar docs.tgz docs.zip; do
    check "$a: every member, in archive order" sh -c "evo-tokenize -q -t '$M' --ids $a | cmp - want.ids"
done
mkdir -p packed && gzip -c tree/sub/part.aa >packed/1.txt.gz && xz -c tree/sub/part.ab >packed/2.txt.xz
tar -cf members.tar -C packed 1.txt.gz 2.txt.xz
check "compressed members inside a tar are decompressed" sh -c "evo-tokenize -q -t '$M' --ids members.tar | cmp - want.ids"
check "several inputs are concatenated in order" bash -c \
    "evo-tokenize -q -t '$M' --ids tree/sub/part.aa docs.txt.gzip | cmp - <(cat <(head -n 100 want.ids) want.ids)"

# JSONL: field selection, nested fields, compression.
/usr/bin/python3 -c '
import json,sys
for i,l in enumerate(open("docs.txt",encoding="utf-8")):
    print(json.dumps({"id":i,"text":l.rstrip("\n"),"meta":{"body":l.rstrip("\n")}},ensure_ascii=(i%2==0)))
' >docs.jsonl
check "*.jsonl reads the text field" sh -c "evo-tokenize -q -t '$M' --ids docs.jsonl | cmp - want.ids"
zstd -q -c docs.jsonl >docs.jsonl.zst
check "*.jsonl.zst too" sh -c "evo-tokenize -q -t '$M' --ids docs.jsonl.zst | cmp - want.ids"
mkdir -p shards && cp docs.jsonl.zst shards/a.jsonl.zst && tar -cf shards.tar shards
check "a .jsonl.zst member of a tar is JSONL" sh -c "evo-tokenize -q -t '$M' --ids shards.tar | cmp - want.ids"
check "--field with a dotted path" sh -c "evo-tokenize -q -t '$M' --ids --field meta.body docs.jsonl | cmp - want.ids"
check "a document per file" sh -c \
    "evo-tokenize -q -t '$M' -f doc -o d.tok tree/sub/part.aa tree/sub/part.ab && evo-tokenize --info d.tok | grep -q '^documents: *2$'"

printf '{"text":"ok"}\n{"text": broken\n{"other":1}\n{"text":5}\n\n{"text":"fine"}\n' >bad.jsonl
check_fails "malformed JSON names file:line" 1 "^evo-tokenize: bad.jsonl:2: malformed JSON" tok -o x.tok bad.jsonl
check "and leaves no output" test ! -e x.tok
check_fails "a missing field names file:line" 1 "bad.jsonl:1: no field meta.x" tok -o x.tok --field meta.x bad.jsonl
check_fails "--skip-bad counts what it skipped" 0 "skipped 3 malformed lines" tok -o x.tok --skip-bad bad.jsonl
check "--skip-bad keeps the good lines" sh -c "evo-tokenize --info x.tok | grep -q '^documents: *2$'"
rm -f x.tok

head -c 5000 docs.txt.gzip >trunc.gz
check_fails "truncated gzip is an error" 1 "trunc.gz: .*(truncated|Truncated|unexpected)" tok -o x.tok trunc.gz
head -c 3000 docs.tar >trunc.tar
check_fails "truncated tar is an error" 1 "trunc.tar" tok -o x.tok -f text trunc.tar
check "no output after any of these failures" test ! -e x.tok

# Chat (SFT): only the assistant's tokens are loss targets.
cat >chat.jsonl <<'J'
{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi."},{"role":"assistant","content":"Hi."}]}
{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"},{"role":"user","content":"and 3+3?"},{"role":"assistant","content":"6","loss":false}]}
J
check "chat data tokenizes with a mask" sh -c "evo-tokenize -q -t '$M' --chat -o chat.tok chat.jsonl && evo-tokenize --info chat.tok | grep -q 'loss mask: *yes'"
tok --chat --ids --no-bos --no-eos chat.jsonl >chat.ids
imend=$(printf '%s\n' '<|im_end|>' | evo-tokenize -q -t "$M" --ids --no-bos --no-eos -)
imend=${imend##* }
# Line 1 ends: answer tokens (positive), <|im_end|> (positive), "\n" (negated).
check "the answer and its end marker are targets" bash -c \
    "head -n 1 chat.ids | tr ' ' '\n' | tail -n 6 | paste -sd' ' | grep -Eq '^-[0-9]+ [0-9]+ [0-9]+ [0-9]+ $imend -[0-9]+$'"
check "the chat decodes back in ChatML form" bash -c \
    "evo-tokenize --decode -t '$M' chat.tok | tr '\\n' '|' | grep -qF '<|im_start|>user|Say hi.<|im_end|>|<|im_start|>assistant|Hi.<|im_end|>|'"
check "everything else is context (negated)" sh -c "head -n 1 chat.ids | cut -d' ' -f1-3 | grep -q '^-[0-9]* -[0-9]* -[0-9]*$'"
check "loss:false overrides the role" sh -c "tail -n 1 chat.ids | awk '{print \$(NF-2)}' | grep -q '^-'"
printf '{"messages":[{"role":"user"}]}\n' >badchat.jsonl
check_fails "a chat line without content" 1 "badchat.jsonl:1: every message needs" tok --chat -o x.tok badchat.jsonl
