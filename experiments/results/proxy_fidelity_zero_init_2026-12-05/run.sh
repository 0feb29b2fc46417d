# Zero-initialized residual layers in the CPU search's proxy: do they rank members better?
# (2-core CPU dev machine, 2026-12-05.) Needs runs/search_cpu: the run of ../cpu_search_2026-12-02/
# (its run.sh), retrained as there; the run's records, config and retraining results committed in
# that folder stand in for it (cp {config.json,records.jsonl,retrain.jsonl,updates.jsonl} runs/search_cpu/).
cd "$(git rev-parse --show-toplevel)"
# each variant's rows are appended as its members finish; a rerun continues, and with every row
# there it only summarizes. About 17 min a one-epoch variant, 20 min a two-epoch one, here.
python -m experiments.check_proxy_fidelity runs/search_cpu --setting fast4-n10000 --set trainer.compile_unit=layer \
    --variant seed+0 --variant seed+0,trainer.zero_init_residual=true \
    --variant epochs2 --variant epochs2,trainer.zero_init_residual=true --out runs/fid > runs/fid/run.log 2>&1
cp runs/fid/*.csv runs/fid/summary.json runs/fid/fidelity.png experiments/results/proxy_fidelity_zero_init_2026-12-05/
