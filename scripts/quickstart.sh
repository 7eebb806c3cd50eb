#!/usr/bin/env bash
# The quickstart: installs what is missing, builds, starts the local stack (etcd,
# mesos-lite, controller), applies the click-fraud topology, waits for the rollout and
# shows its status and the first alerts. The stack keeps running; stop it with
# `target/debug/concord dev down`.
#
# Environment: CONCORD_DEV_FLAGS adds flags to `concord dev up` (other ports, state dir);
# CONCORD_SKIP_BUILD=1 uses the binaries already built (the e2e test does this).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_system_packages
ensure_tansu

if [ "${CONCORD_SKIP_BUILD:-0}" != 1 ]; then
  echo "==> building (first time: a few minutes)"
  cargo build --workspace --bins --locked
fi
concord=target/debug/concord

echo "==> starting the local stack"
# shellcheck disable=SC2086
$concord dev up --detach ${CONCORD_DEV_FLAGS:-}
api_port=7070
if [[ "${CONCORD_DEV_FLAGS:-}" =~ --api-port[=\ ]([0-9]+) ]]; then api_port=${BASH_REMATCH[1]}; fi
export CONCORD_API="http://127.0.0.1:${api_port}"

echo "==> applying the click-fraud topology"
$concord apply -f manifests/examples/clickfraud.yaml
$concord rollout status clickfraud --timeout 5m

echo "==> status"
$concord get topologies
$concord describe topology clickfraud | sed -n '/^Conditions:/,/^Tasks:/p'

echo "==> waiting for the first alerts (sliding 60 s windows, closing every 10 s; about a minute)"
for _ in $(seq 1 120); do
  if alerts=$($concord logs clickfraud alerts 2>/dev/null) && [ -n "$alerts" ]; then
    echo "$alerts" | tail -n 5
    break
  fi
  sleep 1
done

cat <<TOUR

Concord is running the click-fraud job. Try:
  export CONCORD_API=$CONCORD_API
  $concord get topologies -w                      # live status (Ctrl-C to stop)
  $concord graph clickfraud                       # the DAG with live records/s
  $concord logs clickfraud alerts -f              # follow the alerts
  $concord scale topology clickfraud --operator per-ip-counts --instances 3
  $concord dev down                               # stop everything
TOUR
