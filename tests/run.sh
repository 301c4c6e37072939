#!/usr/bin/env bash
# Runs every tests/t*.sh (git-style numbered scripts driving the real tools)
# and ends with the line CI reads: "N passed, N failed".
#   EVO_BINS  directories of evo-* binaries to test, each gets the whole
#             suite (default: bin/; make check-all adds the ASan+UBSan build),
#             or DIR=t1.sh:t2.sh for the named scripts only (the CUDA build)
#   TESTS     space-separated subset, e.g. TESTS="t0020-input.sh"
#   EVO_JOBS  scripts run at once (default: the machine's CPUs, nproc);
#             each one's output is printed whole when it ends
# Each flavour's test drivers (tests/c/*.c, built by make check) are in its
# build folder, build/release/tests, build/asan/tests,
# build/release-cuda/tests or build/release-cuda-emu/tests: EVO_TESTBIN.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export EVO_ROOT=$(dirname "$here")
export EVO_RESULTS=$(mktemp)
outputs=$(mktemp -d)
trap 'rm -rf "$EVO_RESULTS" "$outputs"' EXIT
jobs_max=${EVO_JOBS:-$(nproc)}
if [ "${BASH_VERSINFO[0]}${BASH_VERSINFO[1]}" -lt 51 ] || ! [ "$jobs_max" -ge 1 ] 2>/dev/null; then
    echo "run.sh: needs bash 5.1 or later (wait -p) and EVO_JOBS of 1 or more" >&2
    exit 2
fi

# run_script BIN SCRIPT: one script against one flavour's binaries, with
# that flavour's test drivers (EVO_TESTBIN).
run_script() {
    local start rc t=$2
    export EVO_BIN=$1
    case $EVO_BIN in
    */asan/*) export EVO_SANITIZED=1 EVO_TESTBIN=$EVO_ROOT/build/asan/tests ;;
    */release-cuda/*) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release-cuda/tests ;;
    */release-cuda-emu/*) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release-cuda-emu/tests ;;
    *) unset EVO_SANITIZED; export EVO_TESTBIN=$EVO_ROOT/build/release/tests ;;
    esac
    echo "# $t ($EVO_BIN)"
    start=$(date +%s)
    bash "$here/$t" </dev/null
    rc=$?
    echo "# $t: $(($(date +%s) - start)) s"
    if [ $rc -ne 0 ]; then
        echo "FAIL - $t exited with status $rc"
        echo fail >>"$EVO_RESULTS"
        echo "fail-name $t ($EVO_BIN)" >>"$EVO_RESULTS"
    fi
}

# Every (flavour, script) pair; the longest scripts first, so that with
# EVO_JOBS at once none of them starts last and runs alone.
long_first="t0500-dist.sh t0610-cuda-emulator.sh t0510-workflow.sh"
all_scripts=${TESTS:-$(cd "$here" && ls t[0-9]*.sh)}
queue=()
for pass in long rest; do
    for entry in ${EVO_BINS:-$EVO_ROOT/bin}; do
        bin=${entry%%=*}
        scripts=$all_scripts
        [ "$entry" != "$bin" ] && scripts=$(printf '%s' "${entry#*=}" | tr ':' ' ')
        for t in $scripts; do
            case " $long_first " in *" $t "*) [ $pass = long ] ;; *) [ $pass = rest ] ;; esac && queue+=("$bin $t")
        done
    done
done

# Up to EVO_JOBS scripts at once (tests/lib.sh says how a script keeps out
# of the others' way), each one's output printed whole when it ends.
declare -A output_of=() job_of=()
finish_one() {
    local pid
    wait -n -p pid
    if [ $? -ne 0 ]; then # run_script itself failed: its script's failure must not be lost
        echo fail >>"$EVO_RESULTS"
        echo "fail-name ${job_of[$pid]}: its runner died" >>"$EVO_RESULTS"
    fi
    cat "${output_of[$pid]}"
    unset "output_of[$pid]" "job_of[$pid]"
}
i=0
for job in "${queue[@]}"; do
    while [ ${#output_of[@]} -ge "$jobs_max" ]; do finish_one; done
    i=$((i + 1))
    run_script ${job% *} "${job##* }" >"$outputs/$i" 2>&1 &
    output_of[$!]=$outputs/$i
    job_of[$!]="${job##* } (${job% *})"
done
while [ ${#output_of[@]} -gt 0 ]; do finish_one; done

passed=$(grep -c '^pass$' "$EVO_RESULTS")
failed=$(grep -c '^fail$' "$EVO_RESULTS")
echo
grep '^fail-name ' "$EVO_RESULTS" | sed 's/^fail-name /failed: /'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
