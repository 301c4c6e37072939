# tests/lib.sh - sourced by every tests/t*.sh.
#   check NAME CMD...      passes when CMD exits 0
#   check_fails NAME CODE PATTERN CMD...   passes when CMD exits CODE and its
#                          stderr matches PATTERN (grep -E)
# Each test script runs in its own scratch directory $T (removed at exit).
set -u
: "${EVO_BIN:?run tests through tests/run.sh or make check}"
: "${EVO_RESULTS:=/dev/null}"
EVO_ROOT=${EVO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PATH=$EVO_BIN:$PATH
T=$(mktemp -d "${TMPDIR:-/tmp}/evo-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

pass() { echo "ok - $1"; echo pass >>"$EVO_RESULTS"; }
fail() {
    echo "FAIL - $1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | head -20 | sed 's/^/    /'
    echo fail >>"$EVO_RESULTS"
    echo "fail-name $1" >>"$EVO_RESULTS"
}

check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

check_fails() {
    local name=$1 code=$2 pattern=$3 out rc
    shift 3
    out=$("$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -eq "$code" ] && printf '%s' "$out" | grep -Eq -- "$pattern" &&
        ! printf '%s' "$out" | grep -q 'Sanitizer'; then
        pass "$name"
    else
        fail "$name" "exit $rc (want $code), stderr: $out"
    fi
}

# same_ids NAME A B: two id files identical; on failure shows the first differing line.
same_ids() {
    local name=$1 a=$2 b=$3
    if cmp -s "$a" "$b"; then
        pass "$name ($(wc -l <"$a") lines identical)"
    else
        local n
        n=$(diff <(cat "$a") <(cat "$b") | grep -c '^<')
        fail "$name" "$n of $(wc -l <"$a") lines differ; first: $(diff "$a" "$b" | head -4)"
    fi
}
