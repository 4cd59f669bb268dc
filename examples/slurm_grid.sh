#!/usr/bin/env bash
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=48G
#SBATCH --time=3-00:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#
# The paper's main grid on a SLURM cluster: one array task per run, one GPU each. Same runs,
# folders and settings as examples/grid_local.sh (IMP, LRR, LRR with BatchNorm rewinding x
# SEEDS, for the Table 1 setups), whose functions this script uses.
#
#   bash examples/slurm_grid.sh [SETUP...]           # on the login node: submits two job arrays
#   DRY_RUN=1 bash examples/slurm_grid.sh cifar10    # print the sbatch commands, submit nothing
#   GPUS_PER_RUN=4 bash examples/slurm_grid.sh cifar100   # one torchrun over 4 GPUs per task
#
# Array 1 trains level 0 of each seed's IMP run (the init and the rewind point). Array 2 starts
# when array 1 has succeeded (--dependency=afterok) and trains every run: IMP continued, LRR
# and LRR with BN rewinding from the IMP run's init and rewind point. Every command carries
# --resume, so a preempted or requeued task continues after its last complete level and a
# resubmitted grid skips finished runs. Adjust the #SBATCH lines (partition, account, time
# limit: a Table 1 run is 20 levels x 150 epochs) to your cluster; WORK and DATA must be on a
# file system that the compute nodes share.

set -euo pipefail

if [[ -n ${SLURM_ARRAY_TASK_ID:-} ]]; then
    # On a compute node SLURM runs a copy of this script, so find the library by the path
    # recorded at submission.
    # shellcheck source=examples/grid_local.sh
    source "$SIGNSCOPE_EXAMPLES/grid_local.sh"
    wave=$1
    shift
    mapfile -t jobs < <(grid_jobs "$wave" "$@")
    # shellcheck disable=SC2086  # "SETUP SEED NAME" splits into three arguments
    run_job "$wave" ${jobs[SLURM_ARRAY_TASK_ID]}
    exit
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=examples/grid_local.sh
source "$here/grid_local.sh"
setups=("$@")
((${#setups[@]})) || setups=("${ALL_SETUPS[@]}")
for setup in "${setups[@]}"; do preset_of "$setup" >/dev/null || exit 2; done
n1=$(grid_jobs 1 "${setups[@]}" | wc -l)
n2=$(grid_jobs 2 "${setups[@]}" | wc -l)

common=(--export="ALL,SIGNSCOPE_EXAMPLES=$here" --chdir="$PWD" --gres="gpu:$GPUS_PER_RUN"
        --output="$WORK/logs/%x-%A_%a.out")
submit() {
    if [[ -n ${DRY_RUN:-} ]]; then
        echo "sbatch $*" >&2
        echo "JOBID"
    else
        sbatch --parsable "$@"
    fi
}
[[ -n ${DRY_RUN:-} ]] || mkdir -p "$WORK/logs"
first=$(submit "${common[@]}" --job-name=signscope-level0 --array="0-$((n1 - 1))" \
    "$here/slurm_grid.sh" 1 "${setups[@]}")
submit "${common[@]}" --job-name=signscope-grid --array="0-$((n2 - 1))" \
    --dependency="afterok:${first%%;*}" "$here/slurm_grid.sh" 2 "${setups[@]}" >/dev/null
echo "${DRY_RUN:+would have }submitted $n1 + $n2 tasks; logs in $WORK/logs and beside each run folder" >&2
