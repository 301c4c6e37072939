#!/usr/bin/env bash
# Faults while writing: tests/shim/fault-inject.c (LD_PRELOAD) makes the
# N-th write, pwrite, fsync, close, rename, mkostemp, mkdir, open(O_CREAT),
# fflush or fclose on a file under the output folder fail with ENOSPC (or
# EIO), for every N up to the number of such calls the tool makes on a
# small input, on every write path: evo-tokenize, evo-pack, evo-train's
# checkpoint save and metrics, evo-ckpt reshard / pack / unpack / average /
# prune (prune: its unlink and rmdir calls), evo-convert2hf both ways.
# After each fault the tool either
#   - exits 1 with one line on stderr naming the file and the error, and
#     the output folder is as it was before (previous outputs intact, no
#     temporary left; evo-train: the previous checkpoint verifies, a newer
#     one is incomplete or whole, and resuming from the newest complete one
#     gives the uninterrupted run's checkpoint bit for bit), or
#   - exits 0 with the output of a run without faults (the fault hit a call
#     whose failure changes nothing, such as the directory fsync after a
#     rename).
# Plain flavour only: a preloaded library cannot come before ASan's runtime.
. "$(dirname "$0")/lib.sh"
if [ -n "${EVO_SANITIZED:-}" ]; then exit 0; fi
shim=$EVO_TESTBIN/libfault-inject.so
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
tiny_training
model=$EVO_ROOT/data/tokenizer/evo-bpe8k.model
points_total=0

# snapshot DIR: every file under DIR with its checksum (DIR itself may be absent).
snapshot() { if [ -d "$1" ]; then (cd "$1" && find . -type f -print0 | sort -z | xargs -0r sha1sum); fi; }

# The checks after a trial in w/ (the reference run's folder is ref/): by
# default, after a failure the output folder as before, after a success as
# the reference run left it; a scenario may name its own.
same_as_before() { [ "$(snapshot w/out)" = "$(cat pre.sum)" ]; }
same_as_ref() { [ "$(snapshot w/out)" = "$(cat ref.sum)" ]; }
failed_ok=same_as_before passed_ok=same_as_ref

# sweep NAME ERRNO CMD...: CMD runs in a copy of tpl/ (its outputs under
# out/), first without a fault (the reference and the count of fault
# points), then once with each point failing.
sweep() {
    local name=$1 err=$2 k n rc clean=0 harmless=0 bad=0 first=""
    shift 2
    snapshot tpl/out >pre.sum
    rm -rf w && cp -a tpl w
    (cd w && EVO_FAULT_DIR=out EVO_FAULT_LOG=$T/log LD_PRELOAD=$shim "$@") 2>ref.err
    rc=$?
    k=$(sed -n 's/^calls //p' log | tail -1)
    rm -f log
    if [ $rc -ne 0 ] || [ -z "$k" ] || [ "$k" -lt 1 ]; then
        fail "$name: the run without faults" "exit $rc, ${k:-no} calls counted: $(cat ref.err)"
        return
    fi
    snapshot w/out >ref.sum
    cp -a w ref
    for n in $(seq 1 "$k"); do
        rm -rf w && cp -a tpl w
        (cd w && EVO_FAULT_DIR=out EVO_FAULT_AT=$n EVO_FAULT_ERRNO=$err LD_PRELOAD=$shim "$@") 2>err
        rc=$?
        if [ $rc -eq 1 ] && [ "$(wc -l <err)" -eq 1 ] &&
            grep -Eq '^evo-[a-z0-9]+: .*(No space left on device|Input/output error)' err && $failed_ok; then
            clean=$((clean + 1))
        elif [ $rc -eq 0 ] && $passed_ok; then
            harmless=$((harmless + 1))
        else
            bad=$((bad + 1))
            [ -n "$first" ] || first="point $n: exit $rc, stderr: $(head -3 err)"
        fi
    done
    rm -rf ref
    points_total=$((points_total + k))
    if [ $bad -eq 0 ]; then
        pass "$name: $k fault points ($err): $clean failed cleanly, $harmless changed nothing, 0 lost"
    else
        fail "$name: $k fault points ($err): $bad left a bad state" "$first"
    fi
}

# evo-tokenize and evo-pack replacing an older output of theirs.
rm -rf tpl && mkdir -p tpl/out
head -n 60 en.txt >tpl/en.txt
head -n 20 en.txt >old.txt
evo-tokenize -q -t "$model" -o tpl/out/c.tok old.txt
sweep "evo-tokenize" ENOSPC evo-tokenize -q -t "$model" -o out/c.tok en.txt
sweep "evo-tokenize" EIO evo-tokenize -q -t "$model" -o out/c.tok en.txt
rm -rf tpl && mkdir -p tpl/out
cp c.tok tpl/
evo-pack -q -s 16 -b 1 -o tpl/out/train.pack --valid 0.1 --valid-out tpl/out/valid.pack tpl/c.tok
sweep "evo-pack" ENOSPC evo-pack -q -s 32 -b 2 --valid 0.02 --valid-out out/valid.pack -o out/train.pack c.tok

# evo-train: the save of step 6 (and the metrics) over a folder holding the
# complete checkpoint of step 3.
rm -rf tpl && mkdir -p tpl/out
cp train.pack c.tok tiny.ini tpl/
run=(evo-train -q --set data.total_steps=6 --set lr_scheduler.total_steps=6 --set ckpt.checkpoint_every=3
    --set ckpt.save_ckpt_folder=out/ckpt tiny.ini)
(cd tpl && "${run[@]}" --set data.total_steps=3)
same_step6() { # A B: the weights and optimizer state of step 6
    cmp -s "$1/out/ckpt/6/model_tp0_pp0.evo" "$2/out/ckpt/6/model_tp0_pp0.evo" &&
        cmp -s "$1/out/ckpt/6/optimizer_tp0_pp0_zo0.evo" "$2/out/ckpt/6/optimizer_tp0_pp0_zo0.evo"
}
# After a failure: step 3 as it was; a step 6 either incomplete or the
# reference's (the metrics' last close failed after the save); the run
# resumed from the newest complete one reaches the reference.
train_failed_ok() {
    [ "$(snapshot w/out/ckpt/3)" = "$(snapshot tpl/out/ckpt/3)" ] && evo-ckpt verify w/out/ckpt/3 >/dev/null 2>&1 &&
        { ! evo-ckpt verify w/out/ckpt/6 >/dev/null 2>&1 || same_step6 w ref; } &&
        (cd w && "${run[@]}" 2>/dev/null) && same_step6 w ref
}
train_passed_ok() { same_step6 w ref && evo-ckpt verify w/out/ckpt/6 >/dev/null 2>&1; }
failed_ok=train_failed_ok passed_ok=train_passed_ok
sweep "evo-train save and metrics" ENOSPC "${run[@]}"
sweep "evo-train save and metrics" EIO "${run[@]}"
failed_ok=same_as_before passed_ok=same_as_ref

# kill -9 at random moments of the save of step 6 (a node taken away):
# before a random one of its write calls. The newest complete checkpoint
# verifies, and resuming from it reaches the uninterrupted run's step 6
# bit for bit, with no temporary left. 20 trials; make check-slow: 200.
rm -rf ref && cp -a tpl ref && (cd ref && "${run[@]}")
(cd w && rm -rf out && cp -a ../tpl/out . && EVO_FAULT_DIR=out EVO_FAULT_LOG=$T/log LD_PRELOAD=$shim "${run[@]}")
k=$(sed -n 's/^calls //p' log | tail -1)
rm -f log
trials=$([ -n "${EVO_SLOW:-}" ] && echo 200 || echo 20)
RANDOM=15
killed=0 bad=0 first=""
for i in $(seq 1 "$trials"); do
    n=$((RANDOM % k + 1))
    rm -rf w && cp -a tpl w
    # (in braces: the shell's "Killed" notice goes where their stderr goes)
    { (cd w && EVO_FAULT_DIR=out EVO_FAULT_AT=$n EVO_FAULT_KILL=1 LD_PRELOAD=$shim "${run[@]}"); } 2>/dev/null
    rc=$?
    [ $rc -eq 137 ] && killed=$((killed + 1))
    newest=6
    evo-ckpt verify w/out/ckpt/6 >/dev/null 2>&1 || newest=3
    if ! evo-ckpt verify "w/out/ckpt/$newest" >/dev/null 2>&1 || ! (cd w && "${run[@]}" 2>/dev/null) ||
        ! same_step6 w ref || ls -A w/out/ckpt | grep -Eq '^\.(tmp|old)-'; then
        bad=$((bad + 1))
        [ -n "$first" ] || first="trial $i, killed before call $n of $k (exit $rc): $(ls -A w/out/ckpt | tr '\n' ' ')"
    fi
done
if [ $bad -eq 0 ] && [ $killed -eq "$trials" ]; then
    pass "kill -9 during a save: $trials trials at random calls of $k, newest complete checkpoint verifies and resumes to the uninterrupted run's bits"
else
    fail "kill -9 during a save: $bad of $trials trials lost something ($killed killed)" "$first"
fi
rm -rf ref

# evo-ckpt's writers, from the two checkpoints of that run.
rm -rf tpl && mkdir -p tpl/out
cp train.pack c.tok tiny.ini tpl/
(cd tpl && "${run[@]}" && mv out/ckpt ck)
evo-ckpt pack tpl/ck/3 -o tpl/out/c.tar.zst
evo-ckpt pack tpl/ck/6 -o tpl/c6.tar.zst
sweep "evo-ckpt reshard" ENOSPC evo-ckpt reshard ck/6 --tp 2 --zero 1 -o out/r/6
sweep "evo-ckpt pack" ENOSPC evo-ckpt pack ck/6 -o out/c.tar.zst
sweep "evo-ckpt unpack" ENOSPC evo-ckpt unpack c6.tar.zst -o out/u/6
sweep "evo-ckpt average" ENOSPC evo-ckpt average ck/3 ck/6 -o out/avg/6
# prune: its removals fail (unlink, rmdir); the newest stays complete, an
# older one is either complete or no longer looks so.
rm -rf tpl/out && cp -a tpl/ck tpl/out
prune_failed_ok() {
    [ "$(snapshot w/out/6)" = "$(snapshot tpl/out/6)" ] && evo-ckpt verify w/out/6 >/dev/null 2>&1 &&
        { [ "$(snapshot w/out/3)" = "$(snapshot tpl/out/3)" ] || ! evo-ckpt verify w/out/3 >/dev/null 2>&1; }
}
failed_ok=prune_failed_ok
EVO_FAULT_UNLINK=1 sweep "evo-ckpt prune" ENOSPC evo-ckpt prune out --keep 1
failed_ok=same_as_before

# evo-convert2hf both ways.
rm -rf tpl/out && mkdir tpl/out
sweep "evo-convert2hf to HF" ENOSPC evo-convert2hf ck/6 -o out/hf -t "$model"
evo-convert2hf tpl/ck/6 -o tpl/hf -t "$model"
sweep "evo-convert2hf --from-hf" ENOSPC evo-convert2hf --from-hf hf -o out/imp

echo "# $points_total fault points tried"
