cd /work/main
while ! grep -q reinforce /tmp/ctl/summary.txt 2>/dev/null; do sleep 10; done
SETS="--set sizes=[3] --set samples_per_size=12 --set batch=3 --set evolution.population=6 --set evolution.tournament=2"
SETS="$SETS --set trainer.compile_unit=program"  # as run: the demo then compiled a program per member
start=$(date +%s)
nas search --config experiments/demo.py --run-dir /tmp/ctl/evolution_redraw $SETS --set controller=evolution > /tmp/ctl/evolution_redraw.log 2>&1
echo "evolution_redraw rc=$? wall_s=$(( $(date +%s) - start ))" >> /tmp/ctl/summary.txt
