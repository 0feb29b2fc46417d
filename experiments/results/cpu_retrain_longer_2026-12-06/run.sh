# The CPU search's pairs retrained 3x longer: do they still trail their strong member?
# (2-core CPU dev machine). The run directory is rebuilt from the committed search's files; `nas
# retrain` needs only its config and records for searched samples.
cd "$(git rev-parse --show-toplevel)"
R=${R:-runs/search_cpu_again}
OUT=experiments/results/cpu_retrain_longer_2026-12-06
mkdir -p "$R" && cp experiments/results/cpu_search_2026-12-02/{config.json,records.jsonl,updates.jsonl} "$R"/
for E in 4 12; do
  # the four searched pairs on the front (six distinct members), two members at a time
  nas retrain "$R" --size 2 --pareto --epochs "$E" --train-examples 10000 --workers 2 > "$OUT/pairs_$E.log" 2>&1
  # every one-member sample at or under the pairs' max latency (2.06 ms)
  for s in 9 12 16 13 3 15; do
    nas retrain "$R" --size 1 --sample "$s" --epochs "$E" --train-examples 10000 >> "$OUT/singles_$E.log" 2>&1
  done
done
cp "$R/retrain.jsonl" "$OUT/"
nas show "$R" > "$OUT/retrained.txt"
# then the pairs alone at 24 epochs (their strong members led every one-member sample at their
# latency by almost 3 points at 12)
nas retrain "$R" --size 2 --pareto --epochs 24 --train-examples 10000 --workers 2 > "$OUT/pairs_24.log" 2>&1
cp "$R/retrain.jsonl" "$OUT/"
nas show "$R" > "$OUT/retrained.txt"
# 2026-12-07: the six one-member samples at 24 epochs too (at 12 the pairs' strong members led them
# by almost 3 points), in the same run directory
nas retrain "$R" --size 1 --sample 9 --sample 12 --sample 16 --sample 13 --sample 3 --sample 15 --epochs 24 \
  --train-examples 10000 --workers 2 > "$OUT/singles_24.log" 2>&1
cp "$R/retrain.jsonl" "$OUT/"
nas show "$R" > "$OUT/retrained.txt"
# 2026-12-07: the five triples on the search's front (13 distinct members) at 12 epochs, the
# one-member samples between 2.05 and 3.39 ms (the triples' latencies) at 12, then the triples at
# 4 with today's code
nas retrain "$R" --size 3 --pareto --epochs 12 --train-examples 10000 --workers 2 > "$OUT/triples_12.log" 2>&1
nas retrain "$R" --size 1 --sample 11 --sample 1 --sample 23 --sample 7 --sample 17 --sample 0 --epochs 12 \
  --train-examples 10000 --workers 2 > "$OUT/singles_12_2.05-3.39ms.log" 2>&1
nas retrain "$R" --size 3 --pareto --epochs 4 --train-examples 10000 --workers 2 --max-minutes 18 > "$OUT/triples_4.log" 2>&1
cp "$R/retrain.jsonl" "$OUT/"
nas show "$R" > "$OUT/retrained.txt"
