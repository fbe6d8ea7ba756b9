#!/usr/bin/env bash
# A small corpus that is predictable several tokens ahead, for measuring MTP acceptance on a model
# that has learned it: each document counts upwards in English words from a pseudo-random start,
#   {"text": "forty two, forty three, forty four, ..."}
# Inside a word every character follows from the ones before it, and at a word boundary the next
# number follows from the previous one, so a trained model (and its MTP block) can predict the text
# far ahead. Deterministic (awk's srand(seed)).
#
#   tools/make_counting_corpus.sh OUT.jsonl [DOCUMENTS=400] [SEED=7]
set -euo pipefail
out=${1:?usage: make_counting_corpus.sh OUT.jsonl [DOCUMENTS] [SEED]}
docs=${2:-400}
seed=${3:-7}
awk -v docs="$docs" -v seed="$seed" '
function words(n,   s) {
  split("one two three four five six seven eight nine", ones, " ")
  split("ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen", teens, " ")
  split("twenty thirty forty fifty sixty seventy eighty ninety", tens, " ")
  s = ""
  if (n >= 100) { s = ones[int(n / 100)] " hundred"; n = n % 100; if (n > 0) s = s " " }
  if (n >= 20) { s = s tens[int(n / 10) - 1]; n = n % 10; if (n > 0) s = s " " ones[n] }
  else if (n >= 10) s = s teens[n - 9]
  else if (n > 0) s = s ones[n]
  return s
}
BEGIN {
  srand(seed)
  for (d = 0; d < docs; d++) {
    start = 1 + int(rand() * 900); count = 8 + int(rand() * 12)
    text = ""
    for (i = 0; i < count && start + i < 1000; i++) text = text (i ? ", " : "") words(start + i)
    printf "{\"text\": \"%s\"}\n", text
  }
}' > "$out"
