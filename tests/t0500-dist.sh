#!/usr/bin/env bash
# evo-train on many CPU ranks under srun --mpi=pmix (the local Slurm, see
# tests/lib.sh ranks): the comm layer's collectives in every group of
# several layouts, data parallelism and ZeRO-1 (whole and hybrid) against
# one rank on the same rows, determinism, resuming on another layout,
# stops, mpirun, and the layouts refused before anything is allocated.
. "$(dirname "$0")/lib.sh"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
use_local_slurm
# Open MPI keeps allocations for the life of the process: not our leaks.
# (Its plugins stay loaded, so that the suppressions can name them.)
export LSAN_OPTIONS=suppressions=$EVO_ROOT/tests/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0
export OMPI_MCA_mca_base_component_disable_dlclose=1

# comm-check prints "ok NAME" / "FAIL NAME: why" (rank 0) per check.
comm_check() {
    local n=$1
    shift
    local out rc
    out=$(ranks "$n" "$EVO_TESTBIN/comm-check" "$@" 2>&1)
    rc=$?
    while read -r status rest; do
        case $status in
        ok) pass "comm-check -n $n ($*): $rest" ;;
        FAIL) fail "comm-check -n $n ($*): ${rest%%:*}" "$rest" ;;
        esac
    done <<<"$out"
    if [ "$rc" = 0 ]; then
        pass "comm-check -n $n (tp pp zero1 = $*): every rank exits 0"
    else
        fail "comm-check -n $n (tp pp zero1 = $*): every rank exits 0" "exit $rc: $(tail -5 <<<"$out")"
    fi
}
comm_check 1 1 1 1
comm_check 2 1 1 -1
comm_check 4 2 1 2
comm_check 8 2 2 2
# buffers of a backend whose memory the host cannot read: staged
comm_check 4 2 1 2 guarded

tiny_training
# The comparisons run at lr 1e-3 without q/k/v biases: k's bias has an
# exact gradient of zero, so its computed gradient is rounding noise whose
# sign AdamW turns into a step of lr; summed in another order it steps the
# other way. (Measured at lr 1e-2 with biases: 2-3e-5 apart after 20 steps.)
common=(--set adam.lr=1e-3 --set model.no_bias=true --set data.valid_folder=valid.pack --set data.valid_every=10
    --set parallel.zero1=1)
field() {
    /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if sys.argv[2] in j: print(j[sys.argv[2]])' "$1" "$2"
}
# close A B: two columns of numbers within 1e-5 relative, row by row.
close() {
    paste -d' ' "$1" "$2" | awk '{d = $1 - $2; if (d < 0) d = -d; m = $1 < 0 ? -$1 : $1;
        if (NR == 0 || d > 1e-5 * m) bad++} END {exit !(NR > 0 && !bad)}'
}
steps() {
    sed -E 's/,"comm_bytes":\{[^}]*\}//; s/,"(seconds|tokens_per_s|tflops|mfu|grad_norm|loss|valid_loss|comm_seconds)":[^,}]*//g' "$1"
}

# close_ckpt A B: ckpt-close.py on two checkpoints, B's tensor pieces
# (if any) put back whole first.
close_ckpt() {
    local b=$2
    if [ -f "$2/model_tp1_pp0.evo" ]; then
        b=${2%/*}-tp1/${2##*/} # a checkpoint directory is named by its step
        rm -rf "$b"
        evo-ckpt reshard -q "$2" --tp 1 -o "$b" || return 1
    fi
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" "$1" "$b"
}

# layout REF DIR N NAME ARGS...: tiny.ini on N ranks with ARGS into DIR,
# against REF, one rank's run of the same model on the same rows: losses,
# validation, the steps' bookkeeping, the weights and moments at step 20,
# and the bytes every group moved in step 1 against --dry-run's claim.
layout() {
    local ref=$1 d=$2 n=$3 name=$4
    shift 4
    check "$name (srun -n $n): 20 steps" ranks "$n" evo-train -q "${common[@]}" "$@" --set ckpt.save_ckpt_folder="$d" \
        tiny.ini
    field "$ref/metrics.jsonl" loss >loss1
    field "$d/metrics.jsonl" loss >loss2
    check "$name: the 20 step losses equal one rank's to 1e-5" close loss1 loss2
    field "$ref/metrics.jsonl" valid_loss >valid1
    field "$d/metrics.jsonl" valid_loss >valid2
    check "$name: validation split over ranks gives one rank's loss (1e-5)" close valid1 valid2
    check "$name: the same rows, tokens, lr and steps as one rank" cmp <(steps "$ref/metrics.jsonl") \
        <(steps "$d/metrics.jsonl")
    check "$name: weights and AdamW moments at step 20 equal one rank's (L2, 1e-5)" close_ckpt "$ref/20" "$d/20"
    check "$name: the checkpoint verifies" evo-ckpt verify "$d/20"
    evo-train --dry-run --world "$n" "${common[@]}" "$@" tiny.ini |
        awk '/^# communication per step/ {on = 1; next} on && /^  (world|data|tensor|pipeline|zero1) / {print $1, $2}' >want
    /usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    if j.get("step") == 1 and "comm_bytes" in j:
        for g, n in j["comm_bytes"].items(): print(g, n)
        break' "$d/metrics.jsonl" >got
    check "$name: the bytes each group moved in step 1 are what --dry-run predicts ($(tr '\n' ' ' <got))" \
        cmp want got
}

check "one rank, micro_num 4: 20 steps" evo-train -q "${common[@]}" --set data.micro_num=4 \
    --set ckpt.save_ckpt_folder=one tiny.ini
# ranks, zero1: dp 2 and 4 without ZeRO, with it over all of them, and
# hybrid (blocks of 2 of 4 ranks); micro_num 4 / dp each, the same rows.
for dz in "2 1" "4 1" "2 2" "4 4" "4 2"; do
    set -- $dz
    dp=$1 z=$2 d=dp$1z$2
    layout one $d "$dp" "dp $dp zero1 $z" --set parallel.zero1="$z" --set data.micro_num=$((4 / dp))
    check "dp $dp zero1 $z: $z optimizer shard(s), written by the ranks keeping them" \
        test "$(ls $d/20 | grep -c '^optimizer_tp0_pp0_zo[0-9]*\.evo$')" = "$z"
done

# Gradients reduced in buckets (elements): the bytes split as --dry-run
# says. (Not bit for bit the unbucketed run: Open MPI picks its reduction
# algorithm, and so the order of a sum, by message size.)
layout one dp4z4b 4 "dp 4 zero1 4, reduce_bucket_size 10000" --set parallel.zero1=4 --set data.micro_num=1 \
    --set hybrid_zero_optimizer.reduce_bucket_size=10000
layout one dp4z2b 4 "dp 4 zero1 2, reduce_bucket_size 9999" --set parallel.zero1=2 --set data.micro_num=1 \
    --set hybrid_zero_optimizer.reduce_bucket_size=9999

# Pipeline stages (1F1B): every row's backward runs in row order on every
# stage, so each gradient adds up as on one rank: the same bits.
layout one pp2 2 "pp 2" --set parallel.pipeline.size=2 --set data.micro_num=4
check "pp 2: one model and optimizer file per stage" test -f pp2/20/model_tp0_pp1.evo -a \
    -f pp2/20/optimizer_tp0_pp1_zo0.evo
evo-ckpt reshard -q pp2/20 --pp 1 -o pp2as1/20
check "pp 2 = one rank, bit for bit (resharded to pp 1)" cmp one/20/model_tp0_pp0.evo pp2as1/20/model_tp0_pp0.evo
layout one dp2pp2 4 "dp 2 x pp 2, zero1 2" --set parallel.pipeline.size=2 --set parallel.zero1=2 \
    --set data.micro_num=2
check "dp 2 x pp 2, zero1 2: 2 stages x 2 optimizer shards" \
    test "$(ls dp2pp2/20 | grep -c '^optimizer_tp0_pp[01]_zo[01]\.evo$')" = 4
# four stages need four layers; 5 layers cut 1 1 1 2 (partition_uniform)
for layers in 4 5; do
    check "one rank, $layers layers: 20 steps" evo-train -q "${common[@]}" --set model.num_layers=$layers \
        --set data.micro_num=4 --set ckpt.save_ckpt_folder=one$layers tiny.ini
    layout one$layers pp4L$layers 4 "pp 4, $layers layers" --set model.num_layers=$layers \
        --set parallel.pipeline.size=4 --set data.micro_num=4
done
check "pp 4 on 5 layers: the last stage holds layers 3 and 4" grep -q '^  stage 3:   layers 3-4, final norm, head' \
    <(evo-ckpt info pp4L5/20)
# Tensor parallel (mtp): each rank its heads, its share of the MLP and of
# the vocabulary; partial sums all-reduced, so equal to one rank up to the
# order of those sums. Then every dimension at once.
layout one tp2 2 "tp 2 (mtp)" --set parallel.tensor.size=2 --set data.micro_num=4
check "tp 2: a model file per tensor rank, q's rows split over them" \
    grep -q '^blocks.0.attn.q.weight  *\[32, 32\]  *f32  *pp 0, dim 0 split over tp' <(evo-ckpt info tp2/20)
layout one tp2pp2 4 "tp 2 x pp 2" --set parallel.tensor.size=2 --set parallel.pipeline.size=2 \
    --set data.micro_num=4
layout one dp2tp2 4 "dp 2 x tp 2, zero1 2" --set parallel.tensor.size=2 --set parallel.zero1=2 \
    --set data.micro_num=2
layout one pp2tp2dp2 8 "pp 2 x tp 2 x dp 2, zero1 2 (-n 8)" --set parallel.pipeline.size=2 \
    --set parallel.tensor.size=2 --set parallel.zero1=2 --set data.micro_num=2
check "pp 2 x tp 2 x dp 2: 2 x 2 model files, 2 x 2 x 2 optimizer shards" test \
    "$(ls pp2tp2dp2/20 | grep -c '^model_tp[01]_pp[01]\.evo$') $(ls pp2tp2dp2/20 | grep -c '^optimizer_tp[01]_pp[01]_zo[01]\.evo$')" \
    = "4 8"
# Sequence parallel (msp; fsp runs the same): the residual stream and the
# norms cut by tokens, gathered before the row-cut layers and
# reduce-scattered after the column-cut ones.
layout one msp2 2 "tp 2 msp" --set parallel.tensor.size=2 --set parallel.tensor.mode=msp --set data.micro_num=4
layout one msp2pp2 4 "tp 2 msp x pp 2" --set parallel.tensor.size=2 --set parallel.tensor.mode=msp \
    --set parallel.pipeline.size=2 --set data.micro_num=4
layout one fsp2dp2 4 "tp 2 fsp x dp 2, zero1 2" --set parallel.tensor.size=2 --set parallel.tensor.mode=fsp \
    --set parallel.zero1=2 --set data.micro_num=2
check "tp 2 x pp 2 again" ranks 4 evo-train -q "${common[@]}" --set parallel.tensor.size=2 \
    --set parallel.pipeline.size=2 --set data.micro_num=4 --set ckpt.save_ckpt_folder=tp2pp2again tiny.ini
for f in model_tp1_pp1.evo optimizer_tp0_pp1_zo0.evo state.json; do
    check "tp 2 x pp 2 twice: $f bit for bit" same_run tp2pp2/20/$f tp2pp2again/20/$f
done

check "one rank, 4 layers, micro_num 2: 20 steps" evo-train -q "${common[@]}" --set model.num_layers=4 \
    --set data.micro_num=2 --set ckpt.save_ckpt_folder=one4mn2 tiny.ini
layout one4mn2 pp4mn2 4 "pp 4, micro_num 2 (fewer rows than stages)" --set model.num_layers=4 \
    --set parallel.pipeline.size=4 --set data.micro_num=2

# The interleaved schedule (model.num_chunks): stage s holds chunk c's
# run of layers for every chunk; each chunk's backwards still run in row
# order, so the same bits as one rank again.
il2=(--set model.num_layers=4 --set model.num_chunks=2 --set parallel.pipeline.size=2 --set data.micro_num=4)
layout one4 il2 2 "pp 2 interleaved (2 chunks of 4 layers)" "${il2[@]}"
check "pp 2 interleaved: stage 0 holds layers 0 and 2" grep -q '^  stage 0:   layers 0, 2, embedding$' \
    <(evo-ckpt info il2/20)
evo-ckpt reshard -q il2/20 --pp 1 -o il2as1/20
check "pp 2 interleaved = one rank, bit for bit" cmp one4/20/model_tp0_pp0.evo il2as1/20/model_tp0_pp0.evo
check "one rank, 8 layers: 20 steps" evo-train -q "${common[@]}" --set model.num_layers=8 --set data.micro_num=8 \
    --set ckpt.save_ckpt_folder=one8 tiny.ini
layout one8 il4 4 "pp 4 interleaved (2 chunks of 8 layers), micro_num 8" --set model.num_layers=8 \
    --set model.num_chunks=2 --set parallel.pipeline.size=4 --set data.micro_num=8
evo-ckpt reshard -q il4/20 --pp 1 -o il4as1/20
check "pp 4 interleaved = one rank, bit for bit" cmp one8/20/model_tp0_pp0.evo il4as1/20/model_tp0_pp0.evo
# with tensor ranks (msp) and recomputation: neither the interleaving nor
# the recomputation changes a bit of the plain 1F1B run on the same ranks
msp_pp=(--set model.num_layers=4 --set parallel.pipeline.size=2 --set parallel.tensor.size=2
    --set parallel.tensor.mode=msp --set data.micro_num=4)
check "tp 2 msp x pp 2: 20 steps" ranks 4 evo-train -q "${common[@]}" "${msp_pp[@]}" \
    --set ckpt.save_ckpt_folder=msppp tiny.ini
check "tp 2 msp x pp 2 interleaved, model.checkpoint 0.5: 20 steps" ranks 4 evo-train -q "${common[@]}" \
    "${msp_pp[@]}" --set model.num_chunks=2 --set model.checkpoint=0.5 --set ckpt.save_ckpt_folder=mspil tiny.ini
for d in msppp mspil; do
    evo-ckpt reshard -q $d/20 --tp 1 --pp 1 -o $d-whole/20
done
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo; do
    check "interleaving and recomputation change no bit (tp 2 msp x pp 2): $f" cmp msppp-whole/20/$f \
        mspil-whole/20/$f
done
check "tp 2 msp x pp 2: the losses equal one rank's to 1e-5" close <(field one4/metrics.jsonl loss) \
    <(field mspil/metrics.jsonl loss)
evo-train --dry-run --world 4 "${common[@]}" "${msp_pp[@]}" --set model.num_chunks=2 --set model.checkpoint=0.5 \
    tiny.ini | awk '/^# communication per step/ {on = 1; next} on && /^  (world|data|tensor|pipeline|zero1) / {print $1, $2}' >want
/usr/bin/python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).readline())
for g, n in j["comm_bytes"].items(): print(g, n)' mspil/metrics.jsonl >got
check "tp 2 msp x pp 2 interleaved: the bytes of step 1 are what --dry-run predicts" cmp want got
# ZeRO-2 (parallel.zero1.shard_grads): the gradients cut as the moments,
# each unit's (a layer, the embedding, the head) reduced row by row in the
# backward, so the sums are taken per row first: one rank's run to 1e-5,
# moving the bytes --dry-run predicts.
z2=(--set parallel.zero1.shard_grads=true)
layout one z2dp2 2 "ZeRO-2, dp 2 zero1 2" "${z2[@]}" --set parallel.zero1=2 --set data.micro_num=2
layout one z2dp4h 4 "ZeRO-2, dp 4 zero1 2 (hybrid: all-reduced, then cut)" "${z2[@]}" --set parallel.zero1=2 \
    --set data.micro_num=1
layout one z2pp2 4 "ZeRO-2, dp 2 x pp 2" "${z2[@]}" --set parallel.pipeline.size=2 --set parallel.zero1=2 \
    --set data.micro_num=2
layout one z2fsp 4 "ZeRO-2, tp 2 fsp x dp 2" "${z2[@]}" --set parallel.tensor.size=2 --set parallel.tensor.mode=fsp \
    --set parallel.zero1=2 --set data.micro_num=2
# Interleaved: the same units in the same order on both data-parallel
# ranks. (Its weights are 1.4e-5 from one rank's, as ZeRO-1's are 2.8e-5:
# rounding that AdamW's normalisation of the small mlp_norm gradients
# brings out.)
z2il=(--set model.num_layers=4 --set model.num_chunks=2 --set parallel.pipeline.size=2 --set parallel.zero1=2
    --set data.micro_num=2 "${z2[@]}")
check "ZeRO-2, dp 2 x pp 2 interleaved: 20 steps" ranks 4 evo-train -q "${common[@]}" "${z2il[@]}" \
    --set ckpt.save_ckpt_folder=z2il tiny.ini
check "ZeRO-2, dp 2 x pp 2 interleaved: the losses equal one rank's to 1e-5" close <(field one4/metrics.jsonl loss) \
    <(field z2il/metrics.jsonl loss)
check "ZeRO-2, dp 2 x pp 2 interleaved: weights and moments within 1e-4 of one rank's" \
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" one4/20 z2il/20 1e-4
evo-train --dry-run --world 4 "${common[@]}" "${z2il[@]}" tiny.ini |
    awk '/^# communication per step/ {on = 1; next} on && /^  (world|data|tensor|pipeline|zero1) / {print $1, $2}' >want
/usr/bin/python3 -c '
import json, sys
j = json.loads(open(sys.argv[1]).readline())
for g, n in j["comm_bytes"].items(): print(g, n)' z2il/metrics.jsonl >got
check "ZeRO-2, dp 2 x pp 2 interleaved: the bytes of step 1 are what --dry-run predicts" cmp want got
# With one row per rank on 2 ranks every sum is ZeRO-1's (0 + g, then
# g0 + g1): the same bits. Also when a row has no labelled token while the
# other rank's has (1500 one-token documents and 12 long ones): its
# backward still joins the reductions, with zeros, on every stage.
(yes the | head -n 1500; awk 'length > 400' en.txt | head -n 12) >mix.txt
evo-tokenize -q --no-bos --no-eos -t "$EVO_ROOT/data/tokenizer/evo-bpe8k.model" -o mix.tok mix.txt
evo-pack -q -s 32 -b 2 -o mix.pack mix.tok
check "mix.pack: some step of 2 rows pairs a row without labels with one with labels" sh -c \
    "evo-pack --dump all mix.pack | awk '/^row / {l[n++] = \$7} END {for (i = 0; i + 1 < 60; i += 2) if ((l[i] == 0) != (l[i + 1] == 0)) k++; exit !k}'"
for pp in 1 2; do
    for s in false true; do
        check "dp 2 x pp $pp, zero1 2, shard_grads $s: 30 steps over rows without labels" ranks $((2 * pp)) \
            evo-train -q "${common[@]}" --set data.train_folder=mix.pack --set data.total_steps=30 \
            --set parallel.pipeline.size=$pp --set parallel.zero1=2 --set data.micro_num=1 \
            --set parallel.zero1.shard_grads=$s --set ckpt.save_ckpt_folder=mix$pp$s tiny.ini
    done
    for f in mix${pp}false/30/*.evo; do
        check "ZeRO-2 = ZeRO-1 bit for bit, one row per rank, dp 2 x pp $pp: ${f##*/}" cmp "$f" "mix${pp}true/30/${f##*/}"
    done
done

# The moments each rank keeps: InternEvo's deal of whole tensors, so about
# 1/zero1 of them (the embedding, the largest, sets the imbalance).
total=$(stat -c %s dp2z1/20/optimizer_tp0_pp0_zo0.evo)
for f in dp4z4/20/optimizer_tp0_pp0_zo*.evo; do
    size=$(stat -c %s "$f")
    check "zero1 4: $(basename "$f") holds $size of $total bytes (at most 1/4 + the embedding)" \
        test "$size" -le $((total / 4 + 8000 * 32 * 8 + 65536))
done
check "dp 2 zero1 2 recomputing every layer (model.checkpoint 1): 20 steps" ranks 2 evo-train -q "${common[@]}" \
    --set model.checkpoint=1 --set parallel.zero1=2 --set data.micro_num=2 --set ckpt.save_ckpt_folder=recompute \
    tiny.ini
check "dp 2 zero1 2 with recomputation = one rank without (L2, 1e-5)" \
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" one/20 recompute/20
check "one rank recomputing the first half of the layers" evo-train -q "${common[@]}" --set model.checkpoint=0.5 \
    --set data.micro_num=4 --set ckpt.save_ckpt_folder=recompute1 tiny.ini
check "recomputation changes no bit (one rank, model.checkpoint 0.5)" cmp one/20/model_tp0_pp0.evo \
    recompute1/20/model_tp0_pp0.evo
layout one recompute-msp-pp2 4 "tp 2 msp x pp 2, model.checkpoint 1" --set model.checkpoint=1 \
    --set parallel.tensor.size=2 --set parallel.tensor.mode=msp --set parallel.pipeline.size=2 --set data.micro_num=4

# skip_batches and rampup_batch_size count in batches and rows per rank:
# dp 2 with half the ramp of one rank reads the same rows.
check "one rank: skip_batches 3-4, rampup 2 2 5" evo-train -q "${common[@]}" --set data.micro_num=4 \
    --set data.skip_batches=3-4 --set data.rampup_batch_size="2 2 5" --set ckpt.save_ckpt_folder=ramp1 tiny.ini
check "dp 2: skip_batches 3-4, rampup 1 1 5" ranks 2 evo-train -q "${common[@]}" --set data.micro_num=2 \
    --set data.skip_batches=3-4 --set data.rampup_batch_size="1 1 5" --set ckpt.save_ckpt_folder=ramp2 tiny.ini
check "skip and rampup on dp 2: the same rows, tokens, lr and steps as one rank" cmp <(steps ramp1/metrics.jsonl) \
    <(steps ramp2/metrics.jsonl)
check "skip and rampup on dp 2: weights and moments at step 18 (20 batches, 2 skipped) equal one rank's (L2, 1e-5)" \
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" ramp1/18 ramp2/18

check "dp 2 again" ranks 2 evo-train -q "${common[@]}" --set data.micro_num=2 --set ckpt.save_ckpt_folder=again \
    tiny.ini
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo state.json; do
    check "dp 2 twice: $f bit for bit" same_run dp2z1/20/$f again/20/$f
done
check "dp 4 zero1 2 again" ranks 4 evo-train -q "${common[@]}" --set data.micro_num=1 --set parallel.zero1=2 \
    --set ckpt.save_ckpt_folder=again42 tiny.ini
for f in model_tp0_pp0.evo optimizer_tp0_pp0_zo0.evo optimizer_tp0_pp0_zo1.evo state.json; do
    check "dp 4 zero1 2 twice: $f bit for bit" same_run dp4z2/20/$f again42/20/$f
done
check "dp 2 under mpirun: 20 steps" timeout 300 mpirun --allow-run-as-root --oversubscribe -n 2 \
    evo-train -q "${common[@]}" --set data.micro_num=2 --set ckpt.save_ckpt_folder=mpirun tiny.ini
check "dp 2 under mpirun = under srun: model bit for bit" cmp dp2z1/20/model_tp0_pp0.evo mpirun/20/model_tp0_pp0.evo

# Saved on 2 ranks with ZeRO-1 at step 10, resumed on 1 (and one rank's
# step 10 resumed on 4 ranks, ZeRO-1 over 4): the run goes on as the
# uninterrupted one.
echo 10 >stop
check "dp 2 zero1 2: the stop file ends every rank at step 10" ranks 2 evo-train -q "${common[@]}" \
    --set parallel.zero1=2 --set data.micro_num=2 --set ckpt.save_ckpt_folder=r21 --set ckpt.stop_file_path=stop \
    tiny.ini
check "dp 2 zero1 2: step 10 saved (2 optimizer shards), nothing after" \
    test -f r21/10/10.step -a -f r21/10/optimizer_tp0_pp0_zo1.evo -a ! -e r21/20
check "one rank resumes dp 2 zero1 2's step 10 to step 20" evo-train -q "${common[@]}" --set data.micro_num=4 \
    --set ckpt.save_ckpt_folder=r21 tiny.ini
check "dp 2 zero1 2 -> 1 rank at step 10 = one rank throughout (L2, 1e-5)" \
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" one/20 r21/20
check "one rank to step 10" evo-train -q "${common[@]}" --set data.micro_num=4 --set ckpt.save_ckpt_folder=r14 \
    --set ckpt.stop_file_path=stop tiny.ini
out=$(ranks 4 evo-train "${common[@]}" --set parallel.zero1=4 --set data.micro_num=1 \
    --set ckpt.save_ckpt_folder=r14 tiny.ini 2>&1)
check "dp 4 zero1 4 resumes one rank's step 10" grep -q 'resuming from r14/10 (step 10' <<<"$out"
check "the log and the resume message come once, from rank 0" test "$(grep -c 'resuming from' <<<"$out")" = 1
check "rank 0 prints the layout in one line" \
    grep -q 'rank 0: 4 ranks on 1 node (PMIx), comm mpi: world 4 = pp 1 x dp 4 x tp 1, zero1 4' <<<"$out"
check "1 rank -> dp 4 zero1 4 at step 10 = one rank throughout (L2, 1e-5)" \
    /usr/bin/python3 "$EVO_ROOT/tests/ref/ckpt-close.py" one/20 r14/20
# Between pipeline stages and data ranks: dp 2 x pp 2 with ZeRO-1 saves
# step 10 in 2 x 2 pieces, dp 4 zero1 4 goes on from it; and back.
from_to() {
    local d=$1 n1=$2 n2=$3
    shift 3
    local args1=() args2=()
    while [ "$1" != -- ]; do args1+=("$1"); shift; done
    shift
    args2=("$@")
    check "$d: step 10 on -n $n1 (${args1[*]})" ranks "$n1" evo-train -q "${common[@]}" "${args1[@]}" \
        --set ckpt.stop_file_path=stop --set ckpt.save_ckpt_folder="$d" tiny.ini
    check "$d: to step 20 on -n $n2 (${args2[*]})" ranks "$n2" evo-train -q "${common[@]}" "${args2[@]}" \
        --set ckpt.save_ckpt_folder="$d" tiny.ini
    check "$d: = one rank throughout (L2, 1e-5)" close_ckpt one/20 "$d/20"
}
dp2pp2=(--set parallel.pipeline.size=2 --set parallel.zero1=2 --set data.micro_num=2)
dp4z4=(--set parallel.zero1=4 --set data.micro_num=1)
tp2pp2=(--set parallel.tensor.size=2 --set parallel.pipeline.size=2 --set data.micro_num=4)
from_to pp2-dp4 4 4 "${dp2pp2[@]}" -- "${dp4z4[@]}"
from_to dp4-pp2 4 4 "${dp4z4[@]}" -- "${dp2pp2[@]}"
check "dp 4 -> dp 2 x pp 2: the step-20 checkpoint has 2 stages" test -f dp4-pp2/20/model_tp0_pp1.evo
from_to tp2pp2-dp4 4 4 "${tp2pp2[@]}" -- "${dp4z4[@]}"
from_to dp4-tp2pp2 4 4 "${dp4z4[@]}" -- "${tp2pp2[@]}"
check "dp 4 -> tp 2 x pp 2: the step-20 checkpoint has 2 x 2 pieces" test -f dp4-tp2pp2/20/model_tp1_pp1.evo

# scancel --signal=USR1, as a preempting cluster sends it: every rank
# saves the same step and exits 75; on dp 2, and on tp 2 x pp 2 (ranks in
# the middle of a pipeline's sends when the signal comes).
sig_layouts=("2 --set data.micro_num=2"
    "4 --set data.micro_num=4 --set parallel.tensor.size=2 --set parallel.pipeline.size=2")
if [ -n "${SLURM_CONF:-}" ]; then
    rm -f stop
    for k in 0 1; do
        set -- ${sig_layouts[$k]}
        n=$1
        shift
        name=evo-t0500-$$-$k
        SLURM_JOB_NAME=$name ranks "$n" evo-train -q "${common[@]}" "$@" --set data.total_steps=100000 \
            --set ckpt.checkpoint_every=0 --set ckpt.save_ckpt_folder=sig$k tiny.ini 2>sig$k.err &
        pid=$!
        for _ in $(seq 600); do [ -s sig$k/metrics.jsonl ] && break; sleep 0.1; done
        scancel --signal=USR1 --name="$name"
        wait $pid
        rc=$?
        step=$(ls sig$k | grep -E '^[0-9]+$' | sort -n | tail -1)
        check "scancel --signal=USR1 on -n $n ($*): every rank exits 75 (got $rc)" test "$rc" = 75
        check "scancel --signal=USR1 on -n $n: checkpoint ${step:-(none)} saved and verifies" \
            evo-ckpt verify "sig$k/$step"
        job=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("job_id", ""))' \
            "sig$k/$step/state.json")
        check "the checkpoint names the Slurm job that saved it (job '$job'), and evo-ckpt ls shows it" \
            sh -c "[ -n '$job' ] && evo-ckpt ls sig$k | grep -Eq '^$step .* $job +complete'"
    done
fi

# A rank that hangs (SIGSTOP) or dies (SIGKILL): every other rank ends
# within the timeout, one saying which collective waited, and the last
# complete checkpoint still verifies; on dp 2, and a rank stopped in the
# middle of a pipeline.
for sig in STOP KILL STOP-pp; do
    args=(--set data.micro_num=2)
    [ $sig = STOP-pp ] && args=(--set data.micro_num=4 --set parallel.pipeline.size=2)
    rm -rf "f$sig"
    signal_rank "${sig%-pp}" "f$sig" "f$sig/10/10.step" ranks 2 evo-train -q --comm-timeout 10 "${common[@]}" \
        "${args[@]}" --set data.total_steps=100000 --set ckpt.checkpoint_every=5 --set ckpt.save_ckpt_folder="$T/f$sig" \
        tiny.ini
    check "SIG$sig to one rank: the job ends non-zero (exit $rc) within 60 s of it ($took s)" \
        test "$rc" != 0 -a "$took" -lt 60
    [ "$sig" != KILL ] && check "SIG$sig: a rank says which collective waited, over which group" \
        grep -Eq 'rank [01]: .* over the (data|world|zero1|pipeline) group \(2 ranks\) has waited 10 s for its peers' \
        "f$sig.err"
    n=$(ls "f$sig" | grep -E '^[0-9]+$' | sort -n | tail -1)
    check "SIG$sig to one rank: the last complete checkpoint ($n) verifies" evo-ckpt verify "f$sig/$n"
done

# --dry-run's memory per rank against the peak RSS of a real run (the
# release build only: the sanitizers' shadow memory is not evo's), on a
# model big enough that the process's fixed costs do not dominate: one rank
# (with and without recomputation), two with ZeRO-1 halving the moments,
# two pipeline stages, two tensor ranks (mtp, msp).
if [ -z "${EVO_SANITIZED:-}" ]; then
    evo-pack -q --pack-into-one -s 512 -b 4 -o M.pack c.tok
    printf '%s\n' 'JOB_NAME = m' '[data]' 'seq_len = 512' 'micro_bsz = 4' 'micro_num = 1' 'train_folder = M.pack' \
        'pack_sample_into_one = true' '[model]' 'vocab_size = 32000' 'hidden_size = 512' 'num_attention_heads = 8' \
        'num_layers = 8' 'dtype = fp32' '[ckpt]' 'enable_save_ckpt = false' 'auto_resume = false' >M.ini
    # ranks, then settings; --dry-run speaks of rank 0 (the first pipeline
    # stage), whose peak RSS is measured (each rank's /usr/bin/time writes
    # rss.<its PMIx rank>)
    rss_cases=("1" "1 --set model.checkpoint=1" "2" "2 --set parallel.pipeline.size=2"
        "2 --set parallel.tensor.size=2" "2 --set parallel.tensor.size=2 --set parallel.tensor.mode=msp"
        "2 --set parallel.zero1.shard_grads=true")
    for case in "${rss_cases[@]}"; do
        set -- $case
        n=$1
        shift
        gib=$(evo-train --dry-run --world "$n" "$@" M.ini | awk '/^# memory per rank/ {on = 1} on && $1 == "total" {print $2}')
        rm -f rss.*
        ranks "$n" sh -c 'exec /usr/bin/time -f "%M" -o "rss.${PMIX_RANK:-0}" "$@"' sh evo-train -q "$@" \
            --set data.total_steps=2 M.ini
        kb=$(cat rss.0)
        check "$n rank(s) $*: --dry-run's $gib GiB for rank 0 is its peak RSS ($kb KB) within 15%" \
            awk -v p="$gib" -v kb="$kb" 'BEGIN {m = kb / 1048576; d = p - m; if (d < 0) d = -d; exit !(d <= 0.15 * m)}'
    done
    # ZeRO-1 in bf16 (the emulated backend) cuts the fp32 master weights
    # with Adam's moments, where fp32 cuts the moments only: going from
    # zero1 1 to 2 on dp 2 saves rank 0 2 bytes a parameter more in bf16
    # (half its 4-byte masters). Peak RSS of rank 0 in the four runs; the
    # gradients are reduced in buckets of 1 M elements, so that what Open
    # MPI allocates for a collective (all-reduce with zero1 1, reduce with
    # 2) is small beside the masters.
    params=$(evo-train --dry-run M.ini | awk '$1 == "its" && $2 == "parameters" {print $3}')
    for run in "f32 1 --backend cpu" "f32 2 --backend cpu" "b16 1 --backend emulated --set model.dtype=bf16" \
        "b16 2 --backend emulated --set model.dtype=bf16"; do
        set -- $run
        name=$1 z=$2
        shift 2
        rm -f rss.*
        ranks 2 sh -c 'exec /usr/bin/time -f "%M" -o "rss.${PMIX_RANK:-0}" "$@"' sh evo-train -q "$@" \
            --set parallel.zero1="$z" --set hybrid_zero_optimizer.reduce_bucket_size=1048576 \
            --set data.total_steps=1 M.ini
        eval "rss_$name$z=\$(cat rss.0)"
    done
    check "zero1 2 in bf16 also halves the fp32 master weights: 2 bytes x $params parameters more saved than in fp32, within 15% (fp32 $rss_f321 -> $rss_f322 KB, bf16 $rss_b161 -> $rss_b162 KB)" \
        awk -v f1="$rss_f321" -v f2="$rss_f322" -v b1="$rss_b161" -v b2="$rss_b162" -v n="$params" \
        'BEGIN {s = ((b1 - b2) - (f1 - f2)) * 1024; d = s - 2 * n; if (d < 0) d = -d; exit !(d <= 0.15 * 2 * n)}'
    # ZeRO-2 keeps the gradients of rank 0's tensors and one unit's window
    # instead of all of them: 4 (parameters - kept - window) bytes less, as
    # --dry-run counts them. 16 layers of rows of 512 tokens, so that the
    # layers' gradients outweigh the window (the head's).
    evo-pack -q --pack-into-one -s 512 -b 1 -o M1.pack c.tok
    z2rss=(--set data.micro_bsz=1 --set data.train_folder=M1.pack --set model.num_layers=16 --set parallel.zero1=2
        --set hybrid_zero_optimizer.reduce_bucket_size=1048576 --set data.total_steps=1)
    saved=$(evo-train --dry-run --world 2 "${z2rss[@]}" --set parallel.zero1.shard_grads=true M.ini |
        awk '$1 == "its" && $2 == "parameters" {n = $3} /ZeRO-2: / {k = $6; w = $11; sub(/\)/, "", w)} END {print 4 * (n - k - w)}')
    for s in false true; do
        rm -f rss.*
        ranks 2 sh -c 'exec /usr/bin/time -f "%M" -o "rss.${PMIX_RANK:-0}" "$@"' sh evo-train -q "${z2rss[@]}" \
            --set parallel.zero1.shard_grads=$s M.ini
        eval "rss_z2$s=\$(cat rss.0)"
    done
    check "ZeRO-2 saves rank 0 the $saved bytes of gradients --dry-run counts, within 15% ($rss_z2false -> $rss_z2true KB)" \
        awk -v a="$rss_z2false" -v b="$rss_z2true" -v s="$saved" \
        'BEGIN {d = (a - b) * 1024 - s; if (d < 0) d = -d; exit !(s > 0 && d <= 0.15 * s)}'
fi

# A rank that fails alone (rank 0 cannot open the metrics file) ends the
# job at once, not after the other waited out the watchdog.
start=$(date +%s)
out=$(ranks 2 evo-train -q --comm-timeout 600 "${common[@]}" --set data.micro_num=2 \
    --metrics no/such/dir/m.jsonl tiny.ini 2>&1)
rc=$? took=$(($(date +%s) - start))
check "one rank's fatal error ends the job (exit $rc) in $took s, not the watchdog's 600" test "$rc" != 0 -a "$took" -lt 60
check "one rank's fatal error: the rank says what went wrong" grep -q 'rank 0: no/such/dir/m.jsonl' <<<"$out"

# Impossible layouts: refused by rank 0 in one line naming the key, every rank exits 1.
refused() {
    local name=$1 n=$2 pattern=$3 out rc
    shift 3
    out=$(ranks "$n" evo-train -q "$@" tiny.ini 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" = 1 ] && [ "$(grep -c 'evo-train' <<<"$out")" = 1 ] && grep -Eq -- "$pattern" <<<"$out"; then
        pass "refused: $name"
    else
        fail "refused: $name" "exit $rc, stderr: $out"
    fi
}
refused "3 ranks, tensor 2" 3 'rank 0: 3 ranks cannot be cut into parallel.tensor.size 2 x parallel.pipeline.size 1' \
    --set parallel.tensor.size=2
refused "tensor 3 on 4 heads" 3 'parallel.tensor.size 3 does not divide model.num_attention_heads = 4' \
    --set parallel.tensor.size=3
refused "pipeline 3 on 2 layers" 3 'parallel.pipeline.size 3 exceeds model.num_layers = 2' \
    --set parallel.pipeline.size=3
refused "interleaved on micro_num 3, pipeline 2" 2 'data.micro_num 3 is not a multiple of parallel.pipeline.size 2' \
    --set model.num_layers=4 --set model.num_chunks=2 --set parallel.pipeline.size=2 --set data.micro_num=3
refused "pipeline 4 on chunks of 2 layers" 4 'parallel.pipeline.size 4 exceeds the 2 layers of each of model.num_chunks = 2' \
    --set model.num_layers=4 --set model.num_chunks=2 --set parallel.pipeline.size=4
check_fails "num_chunks 3 on 4 layers" 1 'num_chunks must be 1 to 16 and divide num_layers' \
    evo-train -q --set model.num_chunks=3 --set model.num_layers=4 tiny.ini
refused "zero1 3 on dp 2" 2 'parallel.zero1 3 does not divide the 2 data-parallel ranks' --set parallel.zero1=3
refused "zero1 3 on dp 4" 4 'parallel.zero1 3 does not divide the 4 data-parallel ranks' --set parallel.zero1=3
refused "tensor mode isp (not yet)" 2 'parallel.tensor.mode isp is not implemented yet' --set parallel.tensor.size=2 \
    --set parallel.tensor.mode=isp
refused "msp on rows of 33 tokens, tensor 2" 2 "parallel.tensor.mode msp cuts every row's 33 tokens" \
    --set parallel.tensor.size=2 --set parallel.tensor.mode=msp --set data.seq_len=33 --set data.micro_bsz=1
check_fails "alone: tensor 2 needs 2 ranks" 1 '^evo-train: 1 ranks cannot be cut into parallel.tensor.size 2' \
    evo-train -q --set parallel.tensor.size=2 tiny.ini
