#!/usr/bin/env bash
# The main job: sets the machine up, builds, and runs a demo experiment end to end on this machine:
# a coordinator, a Prometheus server scraping it (deploy/prometheus's config), two worker agents
# (CPU slots, or the GPUs if there are any), configs/demo.yaml submitted with the gauntlet CLI,
# live progress, then the comparison table, a plot and where every metric lives.
#   usage: bash scripts/demo.sh [--keep]     (--keep leaves the services up until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0; [[ "${1:-}" == "--keep" ]] && keep=1
bash scripts/setup.sh

echo "demo: building (the first build compiles LibTorch code: several minutes on 2 cores)"
bazel build //server:coordinator //worker:worker //trainer:trainer //cli:gauntlet 2>&1 | tail -1
bin="$(pwd)/bazel-bin"
data_root="$(pwd)/data"  # the repository's own corpora (configs name them relative to it)

run="$(pwd)/runs/demo-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$run"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_file() { for _ in $(seq 1 300); do [[ -s "$1" ]] && return 0; sleep 0.1; done; return 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin/server/coordinator" --listen=127.0.0.1:0 --port_file="$run/grpc_port" \
  --metrics_listen=127.0.0.1:0 --metrics_port_file="$run/metrics_port" --db="$run/gauntlet.db" \
  --heartbeat_interval_seconds=0.5 > "$run/coordinator.log" 2>&1 &
pids+=($!)
wait_file "$run/grpc_port" && wait_file "$run/metrics_port"
export GAUNTLET_COORDINATOR="127.0.0.1:$(cat "$run/grpc_port")"
metrics_port="$(cat "$run/metrics_port")"

# Prometheus with the repository's own config and rules, pointed at this coordinator's port.
mkdir -p "$run/prometheus"
cp -r deploy/prometheus/rules "$run/prometheus/"
sed "s/127.0.0.1:9464/127.0.0.1:$metrics_port/" deploy/prometheus/prometheus.yml > "$run/prometheus/prometheus.yml"
prom_port="$(free_port)"
prometheus --config.file="$run/prometheus/prometheus.yml" --storage.tsdb.path="$run/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" > "$run/prometheus.log" 2>&1 &
pids+=($!)

slots=$(( $(nproc) > 2 ? $(nproc) / 2 : 2 ))
for w in 1 2; do
  "$bin/worker/worker" --coordinator="$GAUNTLET_COORDINATOR" --worker_id="demo-w$w" \
    --address=127.0.0.1 --cpu_slots="$slots" --work_dir="$run/worker-$w" \
    --trainer="$bin/trainer/trainer" --data_root="$data_root" \
    --rendezvous_port_base=$((29500 + 1000 * w)) > "$run/worker-$w.log" 2>&1 &
  pids+=($!)
done

"$bin/cli/gauntlet" submit configs/demo.yaml
"$bin/cli/gauntlet" watch demo || true
echo
"$bin/cli/gauntlet" describe demo
echo
"$bin/cli/gauntlet" compare demo --plot "$run/val_loss.png"
series="$(curl -s "http://127.0.0.1:$prom_port/api/v1/query" \
  --data-urlencode 'query=count(count_over_time(gauntlet_trial_val_loss{experiment!=""}[1h]))' \
  | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')"
cat <<MSG

Where everything is:
  coordinator (gRPC)   $GAUNTLET_COORDINATOR   e.g. grpcurl -plaintext $GAUNTLET_COORDINATOR list
  metrics (/metrics)   http://127.0.0.1:$metrics_port/metrics
  Prometheus           http://127.0.0.1:$prom_port   ($series trials' val-loss series stored; try gauntlet_trial_val_loss)
  store (SQLite)       $run/gauntlet.db
  plot                 $run/val_loss.png
  trainer logs         $run/worker-*/<trial>/attempt-*/rank-*/stdout.log
MSG
if ((keep)); then
  echo "Services stay up (--keep); Ctrl-C stops them."
  wait
fi
