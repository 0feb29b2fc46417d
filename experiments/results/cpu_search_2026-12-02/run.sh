# The CPU-scale search of 30 ensembles per size and what was read from it (2-core CPU dev machine).
cd "$(git rev-parse --show-toplevel)"
# (one program per member, as the config then had it; it now compiles per layer)
nas search --config experiments/search_cpu.py --set trainer.compile_unit=program --run-dir runs/search_cpu  # 59 min, 2-core CPU
nas show runs/search_cpu --front > experiments/results/cpu_search_2026-12-02/show.txt
nas pool runs/search_cpu > experiments/results/cpu_search_2026-12-02/pool.txt
nas seeds runs/search_cpu --sample 9 --sample 23 --sample 7 --sample 20 --sample 29 --sample 26 --members 3 > experiments/results/cpu_search_2026-12-02/seeds.txt
# Retraining: every front point, then every one-member sample, 4 fast-recipe epochs on 10,000 images
nas retrain runs/search_cpu --pareto --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_2026-12-02/retrain_front.log 2>&1
nas retrain runs/search_cpu --size 1 --top 30 --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_2026-12-02/retrain_singles.log 2>&1
nas retrain runs/search_cpu --pool --pareto --recipe fast --epochs 4 --train-examples 10000 > experiments/results/cpu_search_2026-12-02/retrain_pool.log 2>&1
nas show runs/search_cpu > experiments/results/cpu_search_2026-12-02/retrained.txt
nas plot runs/search_cpu     # plots/retrain-fast4-n10000.png
