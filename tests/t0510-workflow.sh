#!/usr/bin/env bash
# The Slurm workflow end to end, under the local Slurm, with the templates
# of scripts/sbatch: a job array tokenizes 4 parts, the pack runs after it
# (afterok), training runs as a requeueable job on 2 CPU ranks; a USR1 in
# the middle (as before a time limit or a preemption) makes it save, exit
# 75 and requeue itself, and the requeued job resumes and finishes with the
# weights of an uninterrupted run, bit for bit; a SIGKILL to its ranks and a
# requeue (as after a node failure) do the same from the last checkpoint.
. "$(dirname "$0")/lib.sh"
use_local_slurm
if [ -z "${SLURM_CONF:-}" ]; then
    if [ -n "${CI:-}" ]; then fail "the workflow test needs the local Slurm in CI"; else echo "# no Slurm: skipped"; fi
    exit 0
fi
sb=$EVO_ROOT/scripts/sbatch
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
export LSAN_OPTIONS=suppressions=$EVO_ROOT/tests/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0
export OMPI_MCA_mca_base_component_disable_dlclose=1

head -n 300 "$EVO_ROOT/data/corpus/en.txt" >en.txt
head -n 100 "$EVO_ROOT/data/corpus/zh.txt" >zh.txt
head -n 50 "$EVO_ROOT/data/corpus/code.jsonl" >code.jsonl
export TOKENIZER=$EVO_ROOT/data/tokenizer/evo-bpe8k.model INPUTS="en.txt zh.txt code.jsonl" OUT=tok \
    PACK=train.pack VALID=valid.pack VALID_SHARE=0.02 SEQ_LEN=32 MICRO_BSZ=2

# data: 4 array tasks, then the pack
out=$("$sb/prepare-data" 4)
pack_job=$(sed -n 's/.*pack: job \([0-9]*\).*/\1/p' <<<"$out")
check "prepare-data submits the array and the pack ($out)" test -n "$pack_job"
check "the pack job ran after the array and succeeded" completed "$pack_job"
check "the array wrote 4 parts" test -f tok/part-0.tok -a -f tok/part-3.tok
evo-tokenize -q -t "$TOKENIZER" -o one.tok $INPUTS
evo-pack -q -s 32 -b 2 --valid 0.02 --valid-out one-valid.pack -o one.pack one.tok
check "the job array's pack = packing one evo-tokenize run" cmp <(evo-pack --dump all one.pack) \
    <(evo-pack --dump all train.pack)
check "the same validation rows" cmp <(evo-pack --dump all one-valid.pack) <(evo-pack --dump all valid.pack)

sed -n '/^JOB_NAME = tiny/,/^checkpoint_every/p' "$EVO_ROOT/tests/lib.sh" >tiny.ini
export CONFIG=tiny.ini
run=(--set data.total_steps=400 --set data.micro_num=2 --set data.valid_folder=valid.pack --set data.valid_every=100
    --set ckpt.checkpoint_every=50 --set ckpt.keep_last=2)
check "the uninterrupted run (srun -n 2)" timeout 300 srun --mpi=pmix -n 2 evo-train -q "${run[@]}" \
    --set ckpt.save_ckpt_folder=ref tiny.ini

# USR1 in the middle: save, exit 75, requeue, resume, finish
export SETTINGS="${run[*]} --set ckpt.save_ckpt_folder=usr1"
job=$(sbatch --parsable --export=ALL --ntasks-per-node=2 "$sb/train-cpu.sbatch")
wait_for usr1/50/50.step
scancel --signal=USR1 "$job"
check "USR1: the job requeued itself, resumed and completed" completed "$job"
check "USR1: the job ran twice (Restarts=$(restarts "$job"))" test "$(restarts "$job")" = 1
check "USR1: it resumed (the log says so)" grep -q 'resuming from usr1/' "evo-train-$job.log"
check "USR1: the last checkpoint verifies" evo-ckpt verify usr1/400
check "USR1: = the uninterrupted run, bit for bit" cmp ref/400/model_tp0_pp0.evo usr1/400/model_tp0_pp0.evo
check "USR1: the moments too" cmp ref/400/optimizer_tp0_pp0_zo0.evo usr1/400/optimizer_tp0_pp0_zo0.evo
check "evo-ckpt ls: the last step was saved by the requeued job ($job+1)" \
    grep -Eq "^400 .* $job\\+1 +complete" <(evo-ckpt ls usr1)
check "evo-convert2hf of the result" evo-convert2hf -q usr1/400 -t "$TOKENIZER" -o hf
check "a HuggingFace model" test -s hf/model.safetensors -a -s hf/config.json

# SIGKILL to the ranks (a node failure: no signal handler runs, a save may
# be cut off), then a requeue: the next start resumes from the last
# complete checkpoint
export SETTINGS="${run[*]} --set ckpt.save_ckpt_folder=$T/kill"
job=$(sbatch --parsable --export=ALL --ntasks-per-node=2 "$sb/train-cpu.sbatch")
wait_for kill/100/100.step
pkill -KILL -f "^([^ ]*/)?evo-train .*save_ckpt_folder=$T/kill" # its ranks die at once, wherever they are
wait_done "$job"
check "SIGKILL: the job failed (state $(job_state "$job"))" test "$(job_state "$job")" != COMPLETED
n=$(ls kill | grep -E '^[0-9]+$' | sort -n | tail -1)
check "SIGKILL: the last complete checkpoint ($n) verifies" evo-ckpt verify "kill/$n"
scontrol requeue "$job"
check "requeued: it resumed and completed" completed "$job"
check "requeued: = the uninterrupted run, bit for bit" cmp ref/400/model_tp0_pp0.evo kill/400/model_tp0_pp0.evo
check "requeued: no temporary of a killed save is left" sh -c "! ls -a kill | grep -q '^\\.tmp'"

# A job without --signal: evo-train reads the job's end (scontrol's EndTime
# or SLURM_JOB_END_TIME) and saves on its own ckpt.limit_margin before it.
job=$(sbatch --parsable --export=ALL --time=2 --output=limit.log --wrap \
    "evo-train ${run[*]} --set data.total_steps=1000000 --set ckpt.limit_margin=100 --set ckpt.save_ckpt_folder=limit tiny.ini")
wait_done "$job"
check "time limit: the job saved and exited 75 some 100 s before its 2 minutes" \
    sh -c "scontrol show job $job | grep -q 'ExitCode=75:0' && grep -q 'time limit is .* away: saving' limit.log"
n=$(ls limit 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1)
check "time limit: its checkpoint ($n) verifies" evo-ckpt verify "limit/$n"

# a layout that does not fit is refused before srun starts any rank
export SETTINGS="--set parallel.tensor.size=3 --set ckpt.save_ckpt_folder=bad"
job=$(sbatch --parsable --export=ALL --ntasks-per-node=2 "$sb/train-cpu.sbatch")
wait_done "$job"
check "a layout that does not fit: the job fails at --dry-run" grep -q 'cannot be cut into parallel.tensor.size 3' \
    "evo-train-$job.log"

# train-gpu.sbatch's memory gate, run as a batch host would (no GPU node
# here: stand-ins for nvidia-smi and srun): InternEvo's 7B on 8 ranks
# needs 67.68 GiB a rank, refused on 40 GB GPUs, started on 80 GB ones.
mkdir -p fake
printf '#!/bin/sh\necho "srun $*"\n' >fake/srun
gpu_job() { # MiB of the stand-in GPUs
    printf '#!/bin/sh\necho %s\necho %s\n' "$1" "$1" >fake/nvidia-smi
    chmod +x fake/srun fake/nvidia-smi
    PATH=$PWD/fake:$PATH SLURM_JOB_ID=1 SLURM_NTASKS=8 SLURM_JOB_NUM_NODES=1 SETTINGS= \
        CONFIG="$EVO_ROOT/configs/internlm-7b.ini" bash "$sb/train-gpu.sbatch" 2>&1
}
out=$(gpu_job 40960)
check "train-gpu.sbatch on 40 GB GPUs: the 7B is refused at --dry-run" \
    grep -q 'needs 67.68 GiB, more than the 38.00 GiB of --memory' <<<"$out"
check "train-gpu.sbatch on 40 GB GPUs: no rank started" test "$(grep -c '^srun' <<<"$out")" = 0
check "train-gpu.sbatch on 80 GB GPUs: the 7B starts" grep -q '^srun --mpi=pmix --gpus-per-task=1 evo-train' \
    <<<"$(gpu_job 81559)"
