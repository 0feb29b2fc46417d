#!/usr/bin/env bash
# The README's demo search, its six searched ensembles of each size (12 members) retrained at 3
# epochs on 4,000 training images with three seeds each, then one network's seeds against different
# networks under each budget. 2-core CPU: search 4.5 min, each retraining setting 8-10 min.
set -euo pipefail
RUN=${RUN:-/tmp/sd/demo}
nas search --config experiments/demo.py --run-dir "$RUN"
for k in 0 1 2; do
  nas retrain "$RUN" --top 2 --epochs 3 --train-examples 4000 --workers 2 --reseed "$k"
done
SETTINGS=(--retrain-setting fast3-n4000 --retrain-setting fast3+reseed=1-n4000 --retrain-setting fast3+reseed=2-n4000)
nas pool "$RUN" --retrained "${SETTINGS[@]}"
nas pool "$RUN" --retrained "${SETTINGS[@]}" --cost flops
nas report "$RUN"
