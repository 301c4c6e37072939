#!/usr/bin/env bash
# Every tool answers --help and --version, and exits 2 on usage errors.
. "$(dirname "$0")/lib.sh"
for tool in "$EVO_BIN"/evo-*; do
    name=$(basename "$tool")
    check "$name --help" sh -c "'$tool' --help | grep -q Usage"
    check "$name --version" sh -c "'$tool' --version | grep -q '^$name (evo) '"
    check_fails "$name rejects an unknown option" 2 "Try '$name --help'" "$tool" --no-such-option
done
M=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
check_fails "evo-tokenize needs -t" 2 "no tokenizer given" evo-tokenize
check_fails "evo-tokenize -j 0 is a usage error" 2 "thread count" evo-tokenize -t "$M" -j 0
check_fails "missing input file" 1 "^evo-tokenize: nonexistent: No such file" evo-tokenize -t "$M" -o x.tok nonexistent
check "no output left by a failed run" test ! -e x.tok
check_fails "missing tokenizer file" 1 "^evo-tokenize: nope.model: No such file" evo-tokenize -t nope.model /dev/null
