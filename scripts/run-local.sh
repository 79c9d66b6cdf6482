#!/usr/bin/env bash
# Runs the whole MTA on this machine: Azurite (storage), the SMTP ingress, and the functions
# (under `func start` when Azure Functions Core Tools are installed, else the local functions host, which launches
# the same isolated worker and drives it over gRPC: docs/functions-host.md).
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
config=${CONFIG:-Release}

export AzureWebJobsStorage="UseDevelopmentStorage=true"
export Mta__DataDirectory="$root/data"
export Mta__LocalDomains__0="${MTA_LOCAL_DOMAIN:-localhost}"
smtp_port=${Ingress__Port:-2525}

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

mkdir -p .azurite data
# --skipApiVersionCheck: Azure.Storage.Queues 12.28.1 sends a service version newer than Azurite 3.37.0 knows.
node_modules/.bin/azurite --silent --skipApiVersionCheck --disableTelemetry --location .azurite \
  --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 > .azurite/azurite.log 2>&1 &
pids+=($!)

dotnet "ingress/bin/$config/net10.0/Mta.Ingress.dll" &
pids+=($!)

if command -v func >/dev/null 2>&1; then
  # func builds the project itself and runs it from its own output, which holds host.json.
  (cd functions && func start) &
else
  dotnet "functions-host/bin/$config/net10.0/Mta.Functions.Host.dll" --app-path "functions/bin/$config/net10.0" &
fi
pids+=($!)

sleep 3
cat <<MSG

  SMTP listens on  127.0.0.1:$smtp_port
  Local mail for   <user>@$Mta__LocalDomains__0  lands in  $root/data/maildir/<user>/new/
  Storage          Azurite, data in $root/.azurite

  Try:  swaks --server 127.0.0.1:$smtp_port --to user@localhost --from you@example.org
  Stop: Ctrl-C

MSG
wait -n "${pids[@]}"
