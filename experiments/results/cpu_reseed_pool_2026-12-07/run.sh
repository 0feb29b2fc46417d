# The 4-epoch pool of the CPU search's retrained members, retrained twice more with other seeds
# (`nas retrain --reseed 1` and `--reseed 2`: searched seed + 1000, + 2000; 2-core CPU dev machine,
# 2026-12-07). Continues the run directory of ../cpu_retrained_pool_2026-12-07/run.sh, whose 4-epoch
# retrainings (RUN/retrain/*-fast4-n10000) are the searched seeds' pool.
cd "$(git rev-parse --show-toplevel)"
R=${R:-runs/search_cpu_again}
OUT=experiments/results/cpu_reseed_pool_2026-12-07
for K in 1 2; do
  # the same three choices that made the 4-epoch pool (../cpu_retrain_longer_2026-12-06/run.sh)
  nas retrain "$R" --size 2 --pareto --epochs 4 --train-examples 10000 --workers 2 --reseed "$K" > "$OUT/pairs_reseed$K.log" 2>&1
  nas retrain "$R" --size 1 --sample 9 --sample 12 --sample 16 --sample 13 --sample 3 --sample 15 --epochs 4 \
    --train-examples 10000 --workers 2 --reseed "$K" > "$OUT/singles_reseed$K.log" 2>&1
  nas retrain "$R" --size 3 --pareto --epochs 4 --train-examples 10000 --workers 2 --reseed "$K" > "$OUT/triples_reseed$K.log" 2>&1
  nas pool "$R" --retrained --retrain-setting "fast4+reseed=$K-n10000" > "$OUT/pool_fast4+reseed=$K-n10000_latency.txt" 2> /dev/null
done
nas pool "$R" --retrained --retrain-setting fast4-n10000 > "$OUT/pool_fast4-n10000_latency.txt" 2> /dev/null
cp "$R/retrain.jsonl" "$OUT/"
python "$OUT/seeds.py" "$R" > "$OUT/seeds.txt"
