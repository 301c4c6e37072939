#!/usr/bin/env bash
# llamacpp-golden.sh [-l] [-t NAME=TOKENIZER]... CACHE_DIR TOOL
#
# Runs llama.cpp's HF-generated golden cases (CACHE_DIR/golden/NAME.inp/.out,
# made by fetch-llama.sh) through TOOL and compares the ids.
#
# TOOL is one shell word list; "{}" in it is replaced by the tokenizer path,
# otherwise the path is appended. It reads text on stdin and prints token ids
# (whitespace separated) without BOS/EOS, e.g.
#   'bin/evo-tokenize --ids --no-bos --no-eos -t {} -'
# Default: each case is one document, fed as its exact bytes (no newline added),
#   so cases that contain newlines are tested too; TOOL runs once per case.
# -l: TOOL treats each input line as a document (spm_encode). All cases are fed
#   in one run, one per line; cases containing a newline are skipped.
#
# Tokenizers: -t NAME=PATH (repeatable) names the ones to run NAME's cases
# against. Without it, llama-spm runs against CACHE_DIR/llama2.model and
# CACHE_DIR/llama2-tokenizer.json, and other sets are reported as skipped.
# Prints "NAME (FILE): ok N/N" per run; exits 1 if any case differs.
set -euo pipefail

line_mode=0
declare -A extra=()
while getopts "lt:" opt; do
    case $opt in
        l) line_mode=1 ;;
        t) extra[${OPTARG%%=*}]+="${OPTARG#*=}"$'\n' ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -ne 2 ]]; then
    echo "usage: $0 [-l] [-t NAME=TOKENIZER]... CACHE_DIR TOOL" >&2
    exit 2
fi
cache=$1 tool=$2
[[ -d $cache/golden ]] || { echo "llamacpp-golden: no $cache/golden; run fetch-llama.sh first" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Splits NAME.inp exactly as llama.cpp's test-tokenizer-0 does (separator
# "\n__ggml_vocab_test__\n", nothing after the last one) into DIR/N.txt, and
# the matching .out lines into DIR/N.exp; DIR/N.multiline marks a case that
# holds a newline.
split_cases() {
    /usr/bin/python3 - "$1" "$2" "$3" <<'EOF'
import sys
inp, out, d = sys.argv[1:]
cases = open(inp, "rb").read().split(b"\n__ggml_vocab_test__\n")
if cases and cases[-1] == b"":
    cases.pop()
exp = open(out, "rb").read().split(b"\n")[:len(cases)]
if len(exp) != len(cases):
    sys.exit("%s: %d cases but %d expected lines" % (out, len(cases), len(exp)))
for i, (c, e) in enumerate(zip(cases, exp)):
    open("%s/%03d.txt" % (d, i), "wb").write(c)
    open("%s/%03d.exp" % (d, i), "wb").write(b" ".join(e.split()))
    if b"\n" in c:
        open("%s/%03d.multiline" % (d, i), "wb").close()
EOF
}

# Normalises whitespace so "1 2\n" and " 1  2" compare equal.
ids() { tr -s ' \t\n' '\n' | sed '/^$/d' | paste -sd' '; }

run_tool() {  # tokenizer path, stdin -> stdout
    local cmd=${tool//\{\}/$1}
    [[ $cmd != "$tool" ]] || cmd="$tool $1"
    bash -c "$cmd"
}

failed=0
check() {  # name tokenizer casedir
    local name=$1 tok=$2 d=$3 n=0 ok=0 skipped=0 shown=0 f got exp text
    if [[ $line_mode == 1 ]]; then
        : >"$d/lines"
        for f in "$d"/*.txt; do
            if [[ -e ${f%.txt}.multiline ]]; then
                skipped=$((skipped + 1))
            else
                cat "$f" >>"$d/lines"
                echo >>"$d/lines"
            fi
        done
        run_tool "$tok" <"$d/lines" >"$d/lines.got" || { echo "$name: TOOL failed" >&2; failed=1; return; }
    fi
    local line=0
    for f in "$d"/*.txt; do
        if [[ $line_mode == 1 ]]; then
            [[ ! -e ${f%.txt}.multiline ]] || continue
            line=$((line + 1))
            got=$(sed -n "${line}p" "$d/lines.got" | ids)
        else
            got=$(run_tool "$tok" <"$f" | ids) || { echo "$name: TOOL failed on $f" >&2; failed=1; return; }
        fi
        exp=$(cat "${f%.txt}.exp")
        n=$((n + 1))
        if [[ $got == "$exp" ]]; then
            ok=$((ok + 1))
        elif [[ $shown -lt 3 ]]; then
            shown=$((shown + 1))
            text=$(cat "$f"; printf x)  # the x keeps trailing newlines
            printf '%s: case %s differs\n  text: %q\n  want: %s\n  got:  %s\n' \
                "$name" "$(basename "$f" .txt)" "${text%x}" "$exp" "$got"
        fi
    done
    local note=""
    [[ $skipped == 0 ]] || note=" ($skipped skipped: contain a newline)"
    echo "$name ($(basename "$tok")): ok $ok/$n$note"
    [[ $ok == "$n" ]] || failed=1
}

for inp in "$cache"/golden/*.inp; do
    name=$(basename "$inp" .inp)
    d="$tmp/$name"
    mkdir -p "$d"
    split_cases "$inp" "${inp%.inp}.out" "$d"
    toks=${extra[$name]:-}
    if [[ -z $toks && $name == llama-spm ]]; then
        toks="$cache/llama2.model"$'\n'"$cache/llama2-tokenizer.json"
    fi
    if [[ -z $toks ]]; then
        echo "$name: skipped (no tokenizer; give one with -t $name=PATH)"
        continue
    fi
    while IFS= read -r tok; do
        [[ -n $tok ]] || continue
        [[ -f $tok ]] || { echo "$name: $tok is missing" >&2; failed=1; continue; }
        check "$name" "$tok" "$d"
    done <<<"$toks"
done
exit $failed
