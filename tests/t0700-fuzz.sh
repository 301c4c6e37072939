#!/usr/bin/env bash
# The libFuzzer harnesses of tests/fuzz/ (every reader of a file evo may be
# handed: token files, packs, checkpoint tensor files, the marker,
# state.json, configs, safetensors, tokenizers), built with ASan+UBSan by
# make check-all (make fuzz-build): each runs a fixed number of executions
# from the corpus kept in the repository, then every input that once broke
# it (tests/fuzz/regressions). A crash, leak, hang or sanitizer report
# fails. Once, in the plain flavour: the harnesses are their own build.
. "$(dirname "$0")/lib.sh"
if [ -n "${EVO_SANITIZED:-}" ]; then exit 0; fi
if ! ls "$EVO_ROOT"/build/fuzz/bin/fuzz-* >/dev/null 2>&1; then
    fail "fuzz harnesses built" "none in build/fuzz/bin: make fuzz-build (clang-14, libclang-rt-14-dev)"
    exit 0
fi
"$EVO_ROOT/tests/fuzz/run" --scratch "$T/corpus" -runs="${EVO_FUZZ_RUNS:-50000}" -seed=1 >fuzz.log 2>&1
while read -r status what; do
    case $status in
    ok) pass "fuzz $what" ;;
    FAIL) fail "fuzz $what" "$(sed -n "/^FAIL ${what%%:*}:/,/^[a-zA-Z]/p" fuzz.log | tail -n +2)" ;;
    esac
done < <(grep -E '^(ok|FAIL) ' fuzz.log)
n=$(grep -cE '^(ok|FAIL) ' fuzz.log)
want=$(ls "$EVO_ROOT"/tests/fuzz/fuzz-*.c | wc -l)
[ "$n" -eq "$want" ] || fail "every harness ran ($n of $want)" "$(tail -5 fuzz.log)"
