#!/usr/bin/env bash
# MTP acceptance on a model that has learned something, end to end with the `nemotron` binary:
#   1. a counting corpus (tools/make_counting_corpus.sh: text predictable several tokens ahead),
#      400 training documents and 16 held-out ones (another seed);
#   2. `nemotron preprocess` into Megatron .bin/.idx with the character-level test tokenizer
#      (tests/data/generate/tokenizer, 142 ids);
#   3. `nemotron pretrain tiny` on it on the CPU (the tiny recipe's MTP: one '*E' block repeated for
#      2 depths, as Super), ITERS iterations (~1.5 min for 1000 on 2 cores);
#   4. `nemotron convert export` to an HF directory;
#   5. bench_decode --model on the export with held-out prompts: plain vs MTP speculative decoding at
#      batch 1 (and 4) for K = 1, 2, 3: acceptance per draft position, mean accepted length,
#      decode tokens/s and the speed-up, and whether the speculative tokens equal plain greedy's.
#
#   tools/mtp_acceptance.sh [--build DIR] [--work DIR] [--iters N] [--device cpu|cuda] [--dtypes f32,bf16]
#                           [--skip-train]
# --build: where `nemotron` and bench/bench_decode are (default build). --skip-train reuses WORK's
# export (e.g. on the GPU machine, with WORK copied there).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$here/build work=/tmp/mtp_acceptance iters=1000 device=cpu dtypes=f32 skip_train=0
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --iters) iters=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --dtypes) dtypes=$2; shift 2 ;;
    --skip-train) skip_train=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
nemotron=$build/nemotron
bench=$build/bench/bench_decode
[ -x "$bench" ] || bench=$build/bench_decode
tokenizer=$here/tests/data/generate/tokenizer
mkdir -p "$work"

if [ "$skip_train" = 0 ]; then
  "$here/tools/make_counting_corpus.sh" "$work/train.jsonl" 400 7
  "$here/tools/make_counting_corpus.sh" "$work/heldout.jsonl" 16 11
  for split in train heldout; do
    "$nemotron" preprocess --input "$work/$split.jsonl" --output-prefix "$work/$split" --tokenizer "$tokenizer" \
      --append-eod --workers 2
  done
  rm -rf "$work/ckpt" "$work/hf"
  # NullTokenizer: the ids are the data's (all below the tiny recipe's 255); lr raised for a short run.
  time "$nemotron" pretrain tiny "dataset.data_path=[$work/train_text_document]" "dataset.split='98,1,1'" \
    train.train_iters="$iters" optimizer.lr=3e-3 optimizer.min_lr=3e-4 scheduler.lr_warmup_iters=20 \
    validation.eval_interval=100000 logger.log_interval=100 checkpoint.save="$work/ckpt" 2>&1 |
    grep -E "iteration +[0-9]+0{2}/|training on|training done" | sed -E 's/ \| (throughput|learning rate|global batch|load_bal|loss scale|number of)[^|]*//g'
  "$nemotron" convert export --megatron-path "$work/ckpt" --hf-path "$work/hf" 2>&1 | tail -2
fi

# Prompts: the first 32 tokens of held-out documents; 96 new tokens (the documents run 150-600 tokens).
"$bench" --device "$device" --model "$work/hf" --prompts-data "$work/heldout_text_document" --prompt 32 --new 96 \
  --drafts 1,2,3 --batches 1,4 --dtypes "$dtypes"
