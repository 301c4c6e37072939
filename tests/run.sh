#!/usr/bin/env bash
# Runs every tests/t*.sh (git-style numbered scripts driving the real tools)
# and ends with the line CI reads: "N passed, N failed".
#   EVO_BINS  directories of evo-* binaries to test, each gets the whole
#             suite (default: bin/; make check-all adds the ASan+UBSan build),
#             or DIR=t1.sh:t2.sh for the named scripts only (the CUDA build)
#   TESTS     space-separated subset, e.g. TESTS="t0020-input.sh"
# Each flavour's test drivers (tests/c/*.c, built by make check) are in its
# build folder, build/release/tests, build/asan/tests,
# build/release-cuda/tests or build/release-cuda-emu/tests: EVO_TESTBIN.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export EVO_ROOT=$(dirname "$here")
export EVO_RESULTS=$(mktemp)
trap 'rm -f "$EVO_RESULTS"' EXIT

all_scripts=${TESTS:-$(cd "$here" && ls t[0-9]*.sh)}
for entry in ${EVO_BINS:-$EVO_ROOT/bin}; do
    EVO_BIN=${entry%%=*}
    scripts=$all_scripts
    [ "$entry" != "$EVO_BIN" ] && scripts=$(printf '%s' "${entry#*=}" | tr ':' ' ')
    export EVO_BIN
    case $EVO_BIN in
    */asan/*) export EVO_SANITIZED=1 EVO_TESTBIN=$EVO_ROOT/build/asan/tests ;;
    */release-cuda/*) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release-cuda/tests ;;
    */release-cuda-emu/*) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release-cuda-emu/tests ;;
    *) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release/tests ;;
    esac
    for t in $scripts; do
        echo "# $t ($EVO_BIN)"
        start=$(date +%s)
        bash "$here/$t"
        rc=$?
        echo "# $t: $(( $(date +%s) - start )) s"
        if [ $rc -ne 0 ]; then
            echo "FAIL - $t exited with status $rc"
            echo fail >>"$EVO_RESULTS"
            echo "fail-name $t ($EVO_BIN)" >>"$EVO_RESULTS"
        fi
    done
done
passed=$(grep -c '^pass$' "$EVO_RESULTS")
failed=$(grep -c '^fail$' "$EVO_RESULTS")
echo
grep '^fail-name ' "$EVO_RESULTS" | sed 's/^fail-name /failed: /'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
