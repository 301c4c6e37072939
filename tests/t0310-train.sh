#!/usr/bin/env bash
# evo-train end to end on a tiny model: the step's parts (tests/c/train-check),
# loss at init and falling, bit-exact resume, the stop file, SIGUSR1, kill -9
# during saves, inf/NaN steps, skip_batches, rampup, validation, model-only
# loading, and hostile checkpoints.
. "$(dirname "$0")/lib.sh"
# Passive waiting: on a shared 2-core machine spinning OpenMP threads wait
# for each other's time slices and a step takes 50 times longer.
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

# train-check prints "ok NAME" / "FAIL NAME: why" per check.
while read -r status rest; do
    case $status in
    ok) pass "train-check: $rest" ;;
    FAIL) fail "train-check: ${rest%%:*}" "$rest" ;;
    esac
done < <("$EVO_TESTBIN/train-check" 2>&1)

tiny_training


# --- a straight run ---------------------------------------------------------
check "20 steps, checkpoints at 10 and 20" evo-train -q --set ckpt.save_ckpt_folder=a tiny.ini
check "checkpoint 20 is complete" test -f a/20/20.step -a -f a/10/10.step
first=$(field a/metrics.jsonl loss | sed -n 1p)
last=$(field a/metrics.jsonl loss | tail -3 | awk '{s += $1} END {print s / NR}')
check "loss at init is ln(8000) = 8.987 +- 0.1 (got $first)" awk -v l="$first" 'BEGIN {exit !(l > 8.887 && l < 9.087)}'
check "loss falls by more than 1 in 20 steps ($first -> $last)" awk -v a="$first" -v b="$last" 'BEGIN {exit !(a - b > 1)}'
check "metrics: 20 step lines" test "$(field a/metrics.jsonl loss | wc -l)" = 20

# --- --profile: every op timed -----------------------------------------------
# 5 steps x 2 micro-batches, each 2 layers x 7 matmuls + the head, whose
# logits the backward makes again (no [T, vocab] logits kept): 160
# forward matmuls; the table even with -q, the same weights as without.
evo-train -q --profile --set data.total_steps=5 --set ckpt.save_ckpt_folder=prof --set ckpt.checkpoint_every=5 \
    tiny.ini 2>prof.err
check "--profile: matmul_fwd called 5 x 2 x (2 x 7 + 2) = 160 times" \
    grep -Eq '^evo-train: profile: matmul_fwd +160 ' prof.err
check "--profile: a line for every op the step runs, and the total" sh -c \
    "[ \$(grep -Ec '^evo-train: profile: [a-z_0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+% +[0-9.]+\$' prof.err) -ge 19 ] &&
     grep -Eq '^evo-train: profile: all ops +[0-9.]+\$' prof.err"
evo-train -q --set data.total_steps=5 --set ckpt.save_ckpt_folder=noprof --set ckpt.checkpoint_every=5 tiny.ini
check "--profile: the same weights as without it" cmp prof/5/model_tp0_pp0.evo noprof/5/model_tp0_pp0.evo

# --- resume is bit-exact ------------------------------------------------------
# The same run stopped at step 10 by the stop file, then resumed by a new process.
echo 10 >stop
check "stop file 10: stops after saving step 10" evo-train -q --set ckpt.save_ckpt_folder=b \
    --set ckpt.stop_file_path=stop tiny.ini
check "stopped run saved step 10 and nothing after" test -f b/10/10.step -a ! -e b/20
echo 0 >stop
out=$(evo-train --set ckpt.save_ckpt_folder=b --set ckpt.stop_file_path=stop tiny.ini 2>&1)
check "the new process resumes from step 10" grep -q 'resuming from b/10 (step 10' <<<"$out"
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo state.json; do
    check "resumed = straight: $f at step 20 byte for byte" cmp a/20/$f b/20/$f
done
check "resumed = straight: the loss log" cmp <(steps a/metrics.jsonl) <(steps b/metrics.jsonl)

# stop file -N: save at step N and go on.
echo -5 >stop
check "stop file -5: saves step 5 and goes on" evo-train -q --set ckpt.save_ckpt_folder=c \
    --set ckpt.stop_file_path=stop --set ckpt.checkpoint_every=0 tiny.ini
check "stop file -5: checkpoints 5 and 20" test -f c/5/5.step -a -f c/20/20.step

# --- SIGUSR1: save at the step boundary, exit 75 --------------------------------
evo-train -q --set ckpt.save_ckpt_folder=s --set data.total_steps=100000 --set ckpt.checkpoint_every=0 \
    tiny.ini 2>sig.err &
pid=$!
for _ in $(seq 600); do [ -s s/metrics.jsonl ] && break; sleep 0.1; done
kill -USR1 $pid
wait $pid
rc=$?
check "SIGUSR1: exit 75 (requeue)" test $rc = 75
n=$(ls s | grep -E '^[0-9]+$' | head -1)
check "SIGUSR1: checkpoint $n saved and complete" test -n "$n" -a -f "s/$n/$n.step"
out=$(evo-train --set ckpt.save_ckpt_folder=s --set data.total_steps=$((n + 1)) tiny.ini 2>&1)
check "SIGUSR1: the requeued job resumes from step $n" grep -q "resuming from s/$n (step $n" <<<"$out"

# --- a Slurm job's end time: save ckpt.limit_margin before it, exit 75 ----------
start=$(date +%s)
SLURM_JOB_END_TIME=$((start + 5)) evo-train --set ckpt.save_ckpt_folder=lim --set data.total_steps=100000000 \
    --set ckpt.checkpoint_every=0 --set ckpt.limit_margin=3 tiny.ini 2>lim.err
rc=$?
took=$(($(date +%s) - start))
check "job end in 5 s, margin 3 s: exit 75 after about 2 s ($took s)" test "$rc" = 75 -a "$took" -le 4
check "job end: it said why" grep -q "time limit is [0-9]* s away: saving to go on" lim.err
n=$(ls lim | grep -E '^[0-9]+$' | head -1)
check "job end: checkpoint ${n:-(none)} saved and complete" test -n "$n" -a -f "lim/$n/$n.step"
check "ckpt.limit_margin 0: a job's end is not looked at" sh -c \
    "SLURM_JOB_END_TIME=1 evo-train -q --set ckpt.limit_margin=0 --set ckpt.enable_save_ckpt=false \
    --set data.total_steps=3 tiny.ini"
check_fails "ckpt.limit_margin -1" 1 'limit_margin must be 0' evo-train -q --set ckpt.limit_margin=-1 tiny.ini

# --- kill -9 during saves: the newest complete checkpoint always loads ---------
# A wider model (hidden 256: 25 MB of checkpoint) so that a save lasts long
# enough to be hit. Killed the moment a save's temporary directory appears
# (three times), and once at a random time; after each, a new process
# starts from the newest checkpoint with its marker.
wide="--set model.hidden_size=256 --set ckpt.save_ckpt_folder=k --set ckpt.checkpoint_every=1 --set ckpt.keep_last=2"
inside=0
for try in 1 2 3 4; do
    # shellcheck disable=SC2086
    evo-train -q $wide --set data.total_steps=100000 tiny.ini 2>/dev/null &
    pid=$!
    if [ $try = 4 ]; then
        sleep 0.$((RANDOM % 9 + 1))
    else
        for _ in $(seq 200000); do compgen -G 'k/.tmp-*' >/dev/null && break; done
    fi
    kill -9 $pid
    wait $pid 2>/dev/null
    n=
    for d in $(ls k | grep -E '^[0-9]+$' | sort -n); do
        if [ -f "k/$d/$d.step" ]; then n=$d; else inside=$((inside + 1)); fi
    done
    compgen -G 'k/.tmp-*' >/dev/null && inside=$((inside + 1))
    # No complete checkpoint yet (killed inside the first save): a fresh start.
    want="resuming from k/$n " && [ -z "$n" ] && want="weights initialised from seed"
    # shellcheck disable=SC2086
    out=$(evo-train $wide --set data.total_steps=$((n + 1)) tiny.ini 2>&1)
    case $out in
    *"$want"*) pass "kill -9 (try $try): a new process starts from step ${n:-0}" ;;
    *) fail "kill -9 (try $try): a new process starts from step ${n:-0}" "$out" ;;
    esac
done
check "kill -9 landed inside a save at least once ($inside times)" test $inside -gt 0
check "stale temporaries of killed saves are cleaned up" test -z "$(compgen -G 'k/.tmp-*')"

# --- inf/NaN steps ------------------------------------------------------------
check "inf/NaN gradients in batches 2-3: skipped, run completes" evo-train -q --inject-nan 2-3 \
    --set ckpt.enable_save_ckpt=false --metrics nan.jsonl --set data.total_steps=6 tiny.ini
check "inf/NaN: batches 2 and 3 not applied, 4 steps taken" test \
    "$(field nan.jsonl applied | tr '\n' ' ')" = "True True False False True True "
check "inf/NaN: skipped steps counted" grep -q '"batch":5,"step":4,.*"skipped_nonfinite":2' nan.jsonl
check_fails "inf/NaN: 3 in a row stop the run" 1 '3 steps in a row had inf/NaN' evo-train -q --inject-nan 1-100 \
    --set hybrid_zero_optimizer.max_skipped_in_row=3 --set ckpt.enable_save_ckpt=false tiny.ini

# --- skip_batches, rampup, validation ---------------------------------------------
check "skip_batches 1-2" evo-train -q --set 'data.skip_batches=1-2' --set ckpt.save_ckpt_folder=sk \
    --set data.total_steps=5 tiny.ini
check "skip_batches: batches 1 and 2 read and dropped" test "$(grep -c '"skipped_batch":true' sk/metrics.jsonl)" = 2
check "skip_batches: 3 steps taken, 10 rows consumed" grep -Ezq '"step": 3,.*"rows": 10,' sk/3/state.json
check "skip_batches: state counts them" grep -q '"skipped_batches": 2' sk/3/state.json
check "rampup 1 1 2 to micro_num 3" evo-train -q --set 'data.rampup_batch_size=1 1 2' --set data.micro_num=3 \
    --set ckpt.enable_save_ckpt=false --metrics ramp.jsonl --set data.total_steps=7 tiny.ini
check "rampup: rows per step 1 1 2 2 3 3 3" test "$(grep -o '"rows":[0-9]*' ramp.jsonl | cut -d: -f2 | tr '\n' ' ')" = "1 1 2 2 3 3 3 "
check "validation every 5 steps" evo-train -q --set data.valid_folder=valid.pack --set data.valid_every=5 \
    --set ckpt.enable_save_ckpt=false --metrics valid.jsonl --set data.total_steps=10 tiny.ini
check "validation: two validation losses" test "$(grep -c '"valid_loss":[0-9]' valid.jsonl)" = 2

# --- starting points ------------------------------------------------------------
out=$(evo-train --set ckpt.load_model_only_folder=a/20 --set ckpt.save_ckpt_folder=m --set data.total_steps=2 tiny.ini 2>&1)
check "load_model_only: weights from a/20, the schedule afresh" grep -q 'weights from a/20; optimizer' <<<"$out"
check "load_model_only: starts at step 1 with the peak lr (2 steps: no warmup)" grep -Eq '"batch":0,"step":1,.*"lr":0.0100*[0-9]?,' m/metrics.jsonl
mloss=$(field m/metrics.jsonl loss | sed -n 1p)
check "load_model_only: the trained weights' loss ($mloss < 8)" awk -v l="$mloss" 'BEGIN {exit !(l < 8)}'
check "total_steps 0 writes the initial checkpoint" evo-train -q --set data.total_steps=0 --set ckpt.save_ckpt_folder=z tiny.ini
check "total_steps 0: checkpoint 0" test -f z/0/0.step

# --- hostile checkpoints --------------------------------------------------------------
# remark DIR: rewrites DIR's completion marker for its files as they are now,
# so that the damage below reaches the file reader behind the marker check.
remark() {
    /usr/bin/python3 -c '
import os, sys, xxhash
d = sys.argv[1]; step = os.path.basename(d.rstrip("/"))
lines = []
for name in ("config.ini", "state.json", "model_tp0_pp0.evo", "optimizer_tp0_pp0_zo0.evo"):
    data = open(os.path.join(d, name), "rb").read()
    lines.append("%016x  %d  %s\n" % (xxhash.xxh3_64_intdigest(data), len(data), name))
open(os.path.join(d, step + ".step"), "w").write("".join(lines))' "$1"
}
load_bad() { evo-train -q --set ckpt.load_ckpt_folder="$1" --set ckpt.enable_save_ckpt=false tiny.ini; }
mkdir bad
cp -r a/20 bad/20 && truncate -s 5000 bad/20/model_tp0_pp0.evo
check_fails "truncated model file: the marker check names it" 1 'model_tp0_pp0.evo: 5000 bytes, the marker says' load_bad bad/20
remark bad/20
check_fails "truncated model file: the reader names file and offset" 1 'model_tp0_pp0.evo: .*(offset|size|short|truncated)' load_bad bad/20
rm -rf bad/20 && cp -r a/20 bad/20 && printf 'x' | dd of=bad/20/optimizer_tp0_pp0_zo0.evo bs=1 seek=300000 conv=notrunc 2>/dev/null
check_fails "corrupted optimizer file: its section checksum catches it" 1 \
    'optimizer_tp0_pp0_zo0.evo: offset [0-9]+: checksum mismatch in section 2' load_bad bad/20
remark bad/20
check_fails "corrupted optimizer file: the section checksum catches it" 1 'optimizer_tp0_pp0_zo0.evo: .*checksum' load_bad bad/20
rm -rf bad/20 && cp -r a/20 bad/20 && /usr/bin/python3 -c '
import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[64:68] = (7).to_bytes(4, "little"); open(p, "wb").write(b)' \
    bad/20/model_tp0_pp0.evo && remark bad/20
check_fails "hostile meta: refused with the offset" 1 'model_tp0_pp0.evo: offset' load_bad bad/20
rm bad/20/20.step
check_fails "no completion marker: not a checkpoint" 1 'not a complete checkpoint .no marker 20.step. nor a folder holding one' load_bad bad/20
check_fails "another model shape than the checkpoint's: clear error" 1 'another shape than the configured model' \
    evo-train -q --set ckpt.load_ckpt_folder=a/20 --set model.hidden_size=64 --set ckpt.enable_save_ckpt=false tiny.ini
check_fails "a pack of another seq_len: clear error" 1 'packed with seq_len 32 .* says 64' \
    evo-train -q --set data.seq_len=64 --set ckpt.enable_save_ckpt=false tiny.ini

# --- paths and fresh moments -------------------------------------------------
check "load_ckpt_folder with a trailing slash" evo-train -q --set ckpt.load_ckpt_folder=a/10/ \
    --set ckpt.save_ckpt_folder=ts tiny.ini
check "load_ckpt_folder: continues from 10 to 20" test -f ts/20/20.step -a ! -e ts/10
check "load_optimizer=false: fresh moments, bias correction from 1" evo-train -q --set ckpt.load_ckpt_folder=a/10 \
    --set ckpt.load_optimizer=false --set ckpt.save_ckpt_folder=fo tiny.ini
check "load_optimizer=false: adam_steps counts from the restart" grep -Ezq '"step": 20,.*"adam_steps": 10,' fo/20/state.json
check "enable_save_ckpt=false: the stop file saves nothing" sh -c 'echo 3 >stop3 && evo-train -q \
    --set ckpt.enable_save_ckpt=false --set ckpt.save_ckpt_folder=ns --set ckpt.stop_file_path=stop3 tiny.ini && ! test -e ns/3'
