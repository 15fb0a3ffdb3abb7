#!/usr/bin/env bash
# ToolTrain stage 1: SFT on rejection-sampled teacher trajectories with verl 0.9.1
# (torchrun -m verl.trainer.sft_trainer, recipe reposearcher_sft.yaml).
#
# Settings come from environment variables (defaults in brackets); anything after the script's name is
# passed to verl as extra Hydra overrides, e.g. `run_sft.sh trainer.total_epochs=3`.
#
#   MODEL_PATH  the base model [Qwen/Qwen2.5-Coder-7B-Instruct]
#   DATA_DIR    where `reposearcher sft prepare` wrote train.parquet (and optionally test.parquet) [data/sft]
#   NGPUS       GPUs on this node [8]
#   SIZE        7b | 32b [7b]
#   CKPT_DIR    checkpoints [checkpoints/reposearcher/sft-<size>]; the GRPO run then reads
#               MODEL_PATH=$CKPT_DIR/global_step_<last>/huggingface
#   DRY_RUN=1   print the composed config (`--cfg job`) instead of training
#   DEVICE      gpu | cpu [gpu]. cpu trains on the host CPU through verl's own trainer, for small models
#               and smoke runs: it loads our verl platform plugin (reposearcher_plugin/rl/cpu_platform.py)
#               and sets trainer.device=cpu, FSDP2 over gloo, sdpa attention, padded batches (no
#               remove-padding, which is flash-attn varlen) and no torch.compile
#   NPROC       processes (ranks) on this node [NGPUS with DEVICE=gpu, 1 with DEVICE=cpu]
#
# Hardware: 7B full fine-tuning at 32k tokens fits 8 x 80GB with FSDP and no offload; 32B needs FSDP
# parameter + optimizer offload and Ulysses sequence parallel 4 on 8 x 80GB (or 2 nodes; launch torchrun
# with --nnodes/--node_rank/--rdzv_endpoint yourself and set trainer.nnodes).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }

SIZE="${SIZE:-7b}"
MODEL_PATH="${MODEL_PATH:-Qwen/Qwen2.5-Coder-7B-Instruct}"
NGPUS="${NGPUS:-8}"
DEVICE="${DEVICE:-gpu}"
case "$DEVICE" in
    gpu) NPROC="${NPROC:-$NGPUS}" ;;
    cpu) NPROC="${NPROC:-1}" ;;
    *) echo "run_sft.sh: DEVICE must be gpu or cpu, not '$DEVICE'" >&2; exit 2 ;;
esac
DATA_DIR="$(abspath "${DATA_DIR:-$ROOT/data/sft}")"
CKPT_DIR="$(abspath "${CKPT_DIR:-$ROOT/checkpoints/reposearcher/sft-$SIZE}")"
if [[ -d "$MODEL_PATH" ]]; then MODEL_PATH="$(abspath "$MODEL_PATH")"; fi

if [[ "${DRY_RUN:-0}" != 1 && ! -f "$DATA_DIR/train.parquet" ]]; then
    echo "run_sft.sh: missing $DATA_DIR/train.parquet (run \`reposearcher sft prepare --out $DATA_DIR\`)" >&2
    exit 2
fi

overrides=(
    "data.train_files=$DATA_DIR/train.parquet"
    "model.path=$MODEL_PATH"
    "trainer.n_gpus_per_node=$NPROC"
    "trainer.experiment_name=sft-$SIZE"
    "trainer.default_local_dir=$CKPT_DIR"
)
if [[ -f "$DATA_DIR/test.parquet" ]]; then
    overrides+=("data.val_files=$DATA_DIR/test.parquet" "trainer.test_freq=50")
fi
if [[ "$SIZE" == 32b ]]; then
    overrides+=(
        "engine.param_offload=true"
        "engine.optimizer_offload=true"
        "engine.ulysses_sequence_parallel_size=4"
    )
fi

if [[ "$DEVICE" == cpu ]]; then
    # verl 0.9.1 has no CPU platform: VERL_USE_EXTERNAL_MODULES makes `import verl` import our plugin,
    # which registers one named "cpu", and VERL_PLATFORM selects it. verl registers its FSDP engine for
    # devices cuda/npu only and looks it up by the platform's device name; VERL_ENGINE_DEVICE overrides
    # that lookup key (the engine then runs on whatever device the platform names: cpu).
    export VERL_USE_EXTERNAL_MODULES="${VERL_USE_EXTERNAL_MODULES:+$VERL_USE_EXTERNAL_MODULES,}reposearcher_plugin.rl.cpu_platform"
    export VERL_PLATFORM=cpu
    export VERL_ENGINE_DEVICE=cuda
    overrides+=(
        "trainer.device=cpu"
        "engine.strategy=fsdp2"
        "engine.use_torch_compile=false"
        "model.use_remove_padding=false"
        "++model.override_config.attn_implementation=sdpa"
        # one conversation per forward pass: without remove-padding a packed micro-batch is padded to its
        # longest member, and host memory, not a token budget, is the limit
        "data.use_dynamic_bsz=false"
        "data.micro_batch_size_per_gpu=1"
        # dataloader worker processes only compete with the ranks for the few cores
        "data.num_workers=0"
    )
fi

export LITELLM_LOCAL_MODEL_COST_MAP=True

if [[ "${DRY_RUN:-0}" == 1 ]]; then
    # Composing the config needs no GPU and no process group: plain python, not torchrun.
    exec python3 -m verl.trainer.sft_trainer --config-path "$HERE" --config-name reposearcher_sft \
        "${overrides[@]}" "$@" --cfg job
fi
exec torchrun --standalone --nnodes=1 --nproc_per_node="$NPROC" -m verl.trainer.sft_trainer \
    --config-path "$HERE" --config-name reposearcher_sft \
    "${overrides[@]}" "$@"
