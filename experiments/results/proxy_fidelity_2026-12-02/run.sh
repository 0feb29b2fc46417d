# How far the CPU search's one-epoch proxy can be trusted (2-core CPU dev machine, 2026-12-02).
# Needs runs/search_cpu: the run of ../cpu_search_2026-12-02/ (its run.sh), retrained as there.
cd "$(git rev-parse --show-toplevel)"
# control: the search's own members reproduced (first three members)
python -m experiments.check_proxy_fidelity runs/search_cpu --setting fast4-n10000 --variant seed+0 --limit 3 --out runs/fidelity
# the variants, one call (each member's rows are appended as it finishes; a rerun continues)
python -m experiments.check_proxy_fidelity runs/search_cpu --setting fast4-n10000 --variant seed+100 --variant epochs2 \
    --variant epochs4 --out runs/fidelity > runs/fidelity/run.log 2>&1
cp runs/fidelity/{seed+0,seed+100,epochs2,epochs4}.csv runs/fidelity/summary.json runs/fidelity/fidelity.png \
    experiments/results/proxy_fidelity_2026-12-02/
