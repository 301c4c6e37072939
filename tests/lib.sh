# tests/lib.sh - sourced by every tests/t*.sh.
#   check NAME CMD...      passes when CMD exits 0
#   check_fails NAME CODE PATTERN CMD...   passes when CMD exits CODE and its
#                          stderr matches PATTERN (grep -E)
# Each test script runs in its own scratch directory $T (removed at exit).
# Scripts run side by side (tests/run.sh, EVO_JOBS), the same script in
# two flavours too: what one finds by name (pgrep, pkill, scancel --name)
# has $T or $$ in that name, and a wait for another process allows for a
# loaded machine.
set -u
: "${EVO_BIN:?run tests through tests/run.sh or make check}"
: "${EVO_RESULTS:=/dev/null}"
EVO_ROOT=${EVO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PATH=$EVO_BIN:$PATH
T=$(mktemp -d "${TMPDIR:-/tmp}/evo-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

# corpus_text FILE: the bundled English and Chinese text, one document a line
# (all 4.5 MB; a 600-line sample under the sanitizers, which are ~5x slower
# and are there to catch memory errors, not to re-check every id).
corpus_text() {
    if [ -n "${EVO_SANITIZED:-}" ]; then
        head -n 300 "$EVO_ROOT/data/corpus/en.txt"; head -n 300 "$EVO_ROOT/data/corpus/zh.txt"
    else
        cat "$EVO_ROOT/data/corpus/en.txt" "$EVO_ROOT/data/corpus/zh.txt"
    fi >"$1"
}

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

# reference OUT INPUT CMD...: runs CMD <INPUT >OUT, a reference tool whose
# output depends only on its arguments and input files. The output is kept
# in build/test-cache, keyed by those, so the second pass of make check-all
# (the sanitizer builds) does not run the slow references again.
reference() {
    local out=$1 input=$2
    shift 2
    local key a
    key=$({
        printf '%s\n' "$@"
        sha256sum <"$input"
        for a in "$@"; do [ -f "$a" ] && sha256sum <"$a"; done
    } | sha256sum | cut -c1-32)
    local dir=$EVO_ROOT/build/test-cache
    mkdir -p "$dir"
    if [ ! -s "$dir/$key" ]; then
        "$@" <"$input" >"$dir/$key.tmp" && mv "$dir/$key.tmp" "$dir/$key" || { rm -f "$dir/$key.tmp"; return 1; }
    fi
    cp "$dir/$key" "$out"
}

# tiny_training: what the training tests start from, in the scratch
# directory: train.pack (the first 300 lines of the bundled English text,
# rows of 32 x 2 tokens), valid.pack (2% of its documents held out) and
# tiny.ini, a 2-layer model of width 32 that trains its 20 steps (micro_num
# 2, warmup, cosine, clipping, a checkpoint every 10) in about a second.
tiny_training() {
    head -n 300 "$EVO_ROOT/data/corpus/en.txt" >en.txt
    evo-tokenize -q -t "$EVO_ROOT/data/tokenizer/evo-bpe8k.model" -o c.tok en.txt
    evo-pack -q -s 32 -b 2 --valid 0.02 --valid-out valid.pack -o train.pack c.tok
    cat >tiny.ini <<'EOF'
JOB_NAME = tiny
[data]
seq_len = 32
micro_bsz = 2
micro_num = 2
total_steps = 20
train_folder = train.pack
[model]
vocab_size = 8000
hidden_size = 32
num_attention_heads = 4
num_layers = 2
dtype = fp32
[adam]
lr = 1e-2
[lr_scheduler]
warmup_ratio = 0.1
eta_min = 1e-3
[hybrid_zero_optimizer]
clip_grad_norm = 1.0
[ckpt]
checkpoint_every = 10
EOF
}

# field FILE KEY: the KEY of every training-step line of a metrics file.
field() {
    /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if "loss" in j: print(j.get(sys.argv[2]))' "$1" "$2"
}
# steps FILE: the step lines without their timings (what must repeat exactly).
steps() { sed -E 's/,"(seconds|tokens_per_s|tflops|mfu)":[^,}]*//g' "$1"; }

# same_run A B: two files of two runs are the same bytes, but for the
# Slurm job that saved them (state.json's job_* lines).
same_run() { cmp <(grep -av '^  "job_' "$1") <(grep -av '^  "job_' "$2"); }

# use_local_slurm: finds the local Slurm (scripts/slurm-local-cluster) when
# SLURM_CONF does not name one already; ranks then starts ranks with srun.
use_local_slurm() {
    if [ -z "${SLURM_CONF:-}" ] && "$EVO_ROOT/scripts/slurm-local-cluster" status >/dev/null 2>&1; then
        eval "$("$EVO_ROOT/scripts/slurm-local-cluster" env)"
    fi
}

# Batch jobs of the local Slurm. job_state ID: COMPLETED, RUNNING,
# PENDING, FAILED...; restarts ID: the times it was requeued; wait_done
# ID: until the job left the queue for good (at most 300 s); completed
# ID: it did, COMPLETED (after a moment for a requeue to show); wait_for
# FILE: until it exists (at most 300 s).
job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
restarts() { scontrol show job "$1" 2>/dev/null | grep -o 'Restarts=[0-9]*' | cut -d= -f2; }
wait_done() {
    for _ in $(seq 600); do
        case $(job_state "$1") in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) return 0 ;; esac
        sleep 0.5
    done
    return 1
}
completed() { sleep 2 && wait_done "$1" && [ "$(job_state "$1")" = COMPLETED ]; }
wait_for() { for _ in $(seq 600); do [ -e "$1" ] && return 0; sleep 0.5; done; return 1; }

# signal_rank SIG DIR FILE CMD...: CMD (evo-train ranks saving into
# $T/DIR, stderr to DIR.err) in the background; once FILE exists, SIG to
# one of its ranks. Sets rc, the job's exit status, and took, the seconds
# from the signal to the job's end.
signal_rank() {
    local sig=$1 dir=$2 file=$3 pid victim start
    shift 3
    "$@" 2>"$dir.err" &
    pid=$!
    wait_for "$file"
    victim=$(pgrep -f "^([^ ]*/)?evo-train .*save_ckpt_folder=$T/$dir" | tail -1)
    kill -"$sig" "${victim:-$pid}"
    start=$(date +%s)
    wait $pid
    rc=$?
    took=$(($(date +%s) - start))
    kill -KILL "$victim" 2>/dev/null # a stopped rank the launcher left
}

# ranks N CMD...: CMD as N ranks with a PMIx server beside each: srun
# --mpi=pmix where SLURM_CONF names a Slurm (use_local_slurm), else Open
# MPI's mpirun. CI brings the local Slurm up and must use it: there, no
# Slurm is a failure, not a fallback. srun waits forever for CPUs it
# cannot get: hence the timeout.
ranks() {
    local n=$1
    shift
    if [ -n "${SLURM_CONF:-}" ]; then
        timeout 300 srun --mpi=pmix -n "$n" "$@"
    elif [ -n "${CI:-}" ]; then
        echo "ranks: no local Slurm in CI (scripts/slurm-local-cluster up; SLURM_CONF)" >&2
        return 1
    else
        timeout 300 mpirun --allow-run-as-root --oversubscribe -n "$n" "$@"
    fi
}
