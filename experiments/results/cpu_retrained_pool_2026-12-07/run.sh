# The CPU search's retrained members pooled: under each cost budget, is the best ensemble of
# smaller models more accurate than the best single model? (2-core CPU dev machine, 2026-12-07)
# Continues the run directory of ../cpu_retrain_longer_2026-12-06/run.sh, whose retrainings (test
# logits kept in RUN/retrain/) make the pools at 4, 12 and 24 epochs.
cd "$(git rev-parse --show-toplevel)"
R=${R:-runs/search_cpu_again}
OUT=experiments/results/cpu_retrained_pool_2026-12-07
# the one-member samples on the size-1 front above the retrained members' latencies (4.06-6.09 ms,
# 11.8-21.9 MFLOPs), at 12 epochs: single models as large as the pairs and triples are in FLOPs
nas retrain "$R" --size 1 --sample 18 --sample 27 --sample 20 --sample 29 --sample 26 --sample 8 --epochs 12 \
  --train-examples 10000 --workers 2 > "$OUT/singles_12_4.06-6.09ms.log" 2>&1
for S in fast4-n10000 fast12-n10000 fast24-n10000; do
  for C in latency flops; do
    nas pool "$R" --retrained --retrain-setting "$S" --cost "$C" > "$OUT/pool_${S}_${C}.txt" 2> /dev/null
  done
done
cp "$R"/pool_retrained_fast12-n10000_*.csv "$R/retrain.jsonl" "$OUT/"
cp "$R"/plots/pool_retrained_fast12-n10000_*.png "$OUT/"
python experiments/results/cpu_retrained_pool_2026-12-07/picks_spread.py "$R" > "$OUT/picks_spread.txt"
python experiments/results/cpu_retrained_pool_2026-12-07/same_members.py "$R" > "$OUT/same_members.txt"
