# The CPU-scale search again with a two-epoch proxy, and what retraining made of it (2-core CPU dev machine).
cd "$(git rev-parse --show-toplevel)"
nas search --config experiments/search_cpu.py --set trainer.epochs=2 --run-dir runs/search_cpu_2ep   # 35.9 min
nas pool runs/search_cpu_2ep --holdout > experiments/results/cpu_search_2ep_2026-12-03/pool.txt
# Retraining as the one-epoch search's was: every front point, then every one-member sample, 4 fast-recipe
# epochs on 10,000 images. The one-epoch search's checkpoints were copied in first (the same member, seed
# and setting: restored and scored, not trained again): cp -a runs/search_cpu/retrain runs/search_cpu_2ep/
nas retrain runs/search_cpu_2ep --pareto --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_2ep_2026-12-03/retrain_front.log 2>&1
nas retrain runs/search_cpu_2ep --size 1 --top 30 --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_2ep_2026-12-03/retrain_singles.log 2>&1
nas show runs/search_cpu_2ep --front > experiments/results/cpu_search_2ep_2026-12-03/show.txt
nas plot runs/search_cpu_2ep     # plots/retrain-fast4-n10000.png
nas compare runs/search_cpu runs/search_cpu_2ep --retrained --out experiments/results/cpu_search_2ep_2026-12-03/compare_retrained.png > experiments/results/cpu_search_2ep_2026-12-03/compare_retrained.txt
# The run's files into this folder (the member cache, checkpoints and compiled programs stay out), then its page
R=experiments/results/cpu_search_2ep_2026-12-03
(cd runs/search_cpu_2ep && cp config.json records.jsonl updates.jsonl launches.jsonl fronts.csv retrain.jsonl pool_fronts.csv pool_holdout.csv "../../$R/" && cp -r plots "../../$R/")
nas report $R --no-plots
