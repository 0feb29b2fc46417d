# A search of single models only, at the member budget of the CPU search of sizes 1-3, recombined by
# nas pool, retrained, and compared with that search (2-core CPU dev machine).
cd "$(git rev-parse --show-toplevel)"
nas search --config experiments/search_cpu.py --set sizes=1 --set samples_per_size=120 --run-dir runs/search_cpu_singles  # 24.3 min
nas pool runs/search_cpu_singles --sizes 1,2,3 --holdout > experiments/results/cpu_search_singles_2026-12-03/pool.txt
nas pool runs/search_cpu --holdout     # the joint search's (the same as its committed pool_holdout.csv)
# Retraining as the joint search's: 4 fast-recipe epochs on 10,000 images. Checkpoints of the same member,
# seed and setting were copied in first from runs/search_cpu/retrain and runs/search_cpu_2ep/retrain (4 of 24).
nas retrain runs/search_cpu_singles --pool --pareto --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_singles_2026-12-03/retrain_pool.log 2>&1   # sizes 1-3, from pool_fronts.csv
nas retrain runs/search_cpu_singles --pareto --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_singles_2026-12-03/retrain_front.log 2>&1
nas plot runs/search_cpu_singles     # plots/retrain-fast4-n10000.png
nas show runs/search_cpu_singles --front > experiments/results/cpu_search_singles_2026-12-03/show.txt
R=experiments/results/cpu_search_singles_2026-12-03
python -m experiments.check_singles_then_pool runs/search_cpu runs/search_cpu_singles --out $R
# The run's files into this folder (the member cache, checkpoints and compiled programs stay out), then its page
(cd runs/search_cpu_singles && cp config.json records.jsonl updates.jsonl launches.jsonl fronts.csv retrain.jsonl pool_fronts.csv pool_holdout.csv "../../$R/" && cp -r plots "../../$R/")
nas report $R --no-plots
# Both searches again with seed 1, compared on the proxy only (seed1/)
nas search --config experiments/search_cpu.py --set seed=1 --run-dir runs/search_cpu_seed1   # 28.7 min
nas search --config experiments/search_cpu.py --set seed=1 --set sizes=1 --set samples_per_size=120 --run-dir runs/search_cpu_singles_seed1  # 24.9 min
nas pool runs/search_cpu_seed1 --holdout > $R/seed1/joint/pool.txt
nas pool runs/search_cpu_singles_seed1 --sizes 1,2,3 --holdout > $R/seed1/singles/pool.txt
for x in joint:search_cpu_seed1 singles:search_cpu_singles_seed1; do
  (cd runs/${x#*:} && cp config.json records.jsonl pool_holdout.csv pool_fronts.csv launches.jsonl "../../$R/seed1/${x%%:*}/")
  nas show runs/${x#*:} > $R/seed1/${x%%:*}/show.txt
done
python -m experiments.check_singles_then_pool $R/seed1/joint $R/seed1/singles --held-out-only --out $R/seed1
