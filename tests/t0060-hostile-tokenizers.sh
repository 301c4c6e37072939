#!/usr/bin/env bash
# Tokenizer files are untrusted input: truncated, corrupted and hostile
# .model and tokenizer.json files give a one-line error (or, where the
# damage happens to leave a valid file, work), never a crash, a hang or a
# sanitizer report.
. "$(dirname "$0")/lib.sh"
echo "hello world, 你好" >in.txt

# survives FILE: prints what went wrong, if anything.
survives() {
    local out rc
    out=$(timeout 20 evo-tokenize -q -t "$1" --ids in.txt 2>&1 >/dev/null)
    rc=$?
    if { [ $rc -ne 0 ] && [ $rc -ne 1 ]; } || printf '%s' "$out" | grep -q Sanitizer ||
        { [ $rc -eq 1 ] && ! printf '%s' "$out" | grep -q "^evo-tokenize: $1: "; }; then
        echo "    $1: rc=$rc $(printf '%s' "$out" | head -3)"
    fi
}

M=$EVO_ROOT/data/tokenizer/evo-bpe4k-nfkc.model # has a charsmap, the most structure
size=$(stat -c %s "$M")
bad=$(for n in $(seq 0 $((size / 60 + 1)) "$size") 1 2 3 10 100; do
    head -c "$n" "$M" >cut.model; survives cut.model
done)
[ -z "$bad" ] && pass "truncated .model files" || fail "truncated .model files" "$bad"
bad=$(for off in $(seq 0 $((size / 60 + 1)) "$size"); do
    cp "$M" flip.model
    printf '\xff' | dd of=flip.model bs=1 seek="$off" conv=notrunc status=none
    survives flip.model
done)
[ -z "$bad" ] && pass "byte-flipped .model files" || fail "byte-flipped .model files" "$bad"

# A small but complete byte-level BPE tokenizer.json, and hostile variants of it.
/usr/bin/python3 - <<'PY'
import json
b2u = {}
n = 0
for b in range(256):
    if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255:
        b2u[b] = chr(b)
    else:
        b2u[b] = chr(256 + n); n += 1
vocab = {b2u[b]: b for b in range(256)}
merges = []
for a, c in [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("\u0120", "w")]:
    vocab[a + c] = len(vocab); merges.append(f"{a} {c}")
good = {
    "version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|end|>", "special": True,
        "single_word": False, "lstrip": False, "rstrip": False, "normalized": False}],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    "post_processor": None, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "fuse_unk": False,
              "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}
def write(name, obj):
    open(name, "w").write(obj if isinstance(obj, str) else json.dumps(obj))
write("good.json", good)
import copy
def variant(name, f):
    t = copy.deepcopy(good); f(t); write(name, t)
variant("bad-unknown-merge.json", lambda t: t["model"]["merges"].append("zz qq"))
variant("bad-huge-id.json", lambda t: t["model"]["vocab"].__setitem__("big", 4000000000))
variant("bad-negative-id.json", lambda t: t["model"]["vocab"].__setitem__("neg", -5))
variant("bad-string-id.json", lambda t: t["model"]["vocab"].__setitem__("s", "7"))
variant("bad-no-model.json", lambda t: t.pop("model"))
variant("bad-model-type.json", lambda t: t["model"].__setitem__("type", "WordPiece"))
variant("bad-pretok.json", lambda t: t.__setitem__("pre_tokenizer", {"type": "Whitespace"}))
variant("bad-regex.json", lambda t: t.__setitem__("pre_tokenizer", {"type": "Split",
        "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": False}))
variant("bad-merges-type.json", lambda t: t["model"].__setitem__("merges", 5))
variant("bad-added.json", lambda t: t["added_tokens"][0].__setitem__("id", 1 << 40))
variant("bad-dropout.json", lambda t: t["model"].__setitem__("dropout", 0.1))
write("bad-syntax.json", json.dumps(good)[:-7])
write("bad-array.json", "[1, 2, 3]")
PY
check "the small tokenizer.json works" sh -c "evo-tokenize -q -t good.json --ids --no-bos --no-eos in.txt | grep -q ."
for f in bad-*.json; do
    check_fails "$f is refused" 1 "^evo-tokenize: $f: tokenizer.json: " evo-tokenize -q -t "$f" --ids in.txt
done
check_fails "unsupported components are named" 1 "pre_tokenizer type 'Whitespace'|Whitespace" evo-tokenize -t bad-pretok.json in.txt
size=$(stat -c %s good.json)
bad=$(for n in $(seq 0 $((size / 80 + 1)) "$size"); do
    head -c "$n" good.json >cut.json; survives cut.json
done)
[ -z "$bad" ] && pass "truncated tokenizer.json files" || fail "truncated tokenizer.json files" "$bad"
