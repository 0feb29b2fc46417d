set -u
cd /work/main
SETS="--set sizes=[3] --set samples_per_size=12 --set batch=3 --set evolution.population=6 --set evolution.tournament=2"
SETS="$SETS --set trainer.compile_unit=program"  # as run: the demo then compiled a program per member
for c in evolution reinforce; do
  start=$(date +%s)
  nas search --config experiments/demo.py --run-dir /tmp/ctl/$c $SETS --set controller=$c > /tmp/ctl/$c.log 2>&1
  echo "$c rc=$? wall_s=$(( $(date +%s) - start ))" >> /tmp/ctl/summary.txt
done
