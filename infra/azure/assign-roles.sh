#!/usr/bin/env bash
# Creates the MTA's Azure identities and grants each the storage roles in storage-roles.json (next to this script),
# on the storage account:
#   - a user-assigned managed identity per part (mta-ingress, mta-functions, mta-keda), federated (workload identity)
#     with its Kubernetes service account;
#   - with --operators, the same for the operators' Entra user or group (mtactl signs in as them).
# It prints the client ids for infra/k8s/overlays/azure/kustomization.yaml. Safe to run again: every step is a create
# or update. Needs az (logged in, allowed to create identities and role assignments) and jq.
#
#   infra/azure/assign-roles.sh --resource-group RG --account STORAGE_ACCOUNT \
#       (--cluster AKS_CLUSTER [--cluster-resource-group RG] | --issuer OIDC_ISSUER_URL) \
#       [--operators OBJECT_ID] [--location LOCATION] [--dry-run]
#
# --dry-run prints the az commands that change something instead of running them (lookups print placeholders).
set -euo pipefail

roles_file="$(cd "$(dirname "$0")" && pwd)/storage-roles.json"
group="" account="" cluster="" cluster_group="" issuer="" operators="" location="" dry_run=0

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --resource-group) group="$2"; shift 2 ;;
    --account) account="$2"; shift 2 ;;
    --cluster) cluster="$2"; shift 2 ;;
    --cluster-resource-group) cluster_group="$2"; shift 2 ;;
    --issuer) issuer="$2"; shift 2 ;;
    --operators) operators="$2"; shift 2 ;;
    --location) location="$2"; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    *) usage ;;
  esac
done
[[ -n "$group" && -n "$account" && ( -n "$cluster" || -n "$issuer" ) ]] || usage
command -v jq >/dev/null || { echo "jq is needed to read $roles_file" >&2; exit 1; }

# Changes: run, or print in a dry run.
change() {
  if (( dry_run )); then printf '%q ' "$@"; echo; else "$@" >/dev/null; fi
}

# Lookups: their output, or a placeholder in a dry run.
lookup() {
  local placeholder="$1"; shift
  if (( dry_run )); then echo "<$placeholder>"; else "$@"; fi
}

account_id=$(lookup "storage account id" az storage account show --resource-group "$group" --name "$account" --query id --output tsv)
if [[ -z "$issuer" ]]; then
  issuer=$(lookup "OIDC issuer" az aks show --resource-group "${cluster_group:-$group}" --name "$cluster" \
    --query oidcIssuerProfile.issuerUrl --output tsv)
fi

# The roles of one identity, one per line.
roles_of() { jq -r --arg name "$1" '.identities[] | select(.name == $name) | .roles | keys_unsorted[]' "$roles_file"; }

grant() { # principal id, principal type (empty: let az look it up), identity name
  local principal="$1" type="$2" name="$3" role
  while IFS= read -r -u 4 role; do
    change az role assignment create --assignee-object-id "$principal" ${type:+--assignee-principal-type "$type"} \
      --role "$role" --scope "$account_id"
  done 4< <(roles_of "$name")
}

declare -A client_ids
# Own file descriptors for the loops: az must not read their input.
while IFS=$'\t' read -r -u 3 name identity service_account; do
  change az identity create --resource-group "$group" --name "$identity" ${location:+--location "$location"}
  principal=$(lookup "principal id of $identity" az identity show --resource-group "$group" --name "$identity" --query principalId --output tsv)
  client_ids[$name]=$(lookup "client id of $identity" az identity show --resource-group "$group" --name "$identity" --query clientId --output tsv)
  change az identity federated-credential create --resource-group "$group" --identity-name "$identity" \
    --name "${service_account//\//-}" --issuer "$issuer" \
    --subject "system:serviceaccount:${service_account%%/*}:${service_account#*/}" --audiences api://AzureADTokenExchange
  grant "$principal" ServicePrincipal "$name"
done 3< <(jq -r '.identities[] | select(.managedIdentity) | [.name, .managedIdentity, .serviceAccount] | @tsv' "$roles_file")

if [[ -n "$operators" ]]; then
  grant "$operators" "" operators
fi

cat <<EOF

Put these into infra/k8s/overlays/azure/kustomization.yaml:
  mta-storage-identity:  AzureWebJobsStorage__accountName=$account
  mta-identities:        ingress=${client_ids[ingress]}
                         functions=${client_ids[functions]}
                         keda=${client_ids[keda]}
KEDA's operator must run with workload identity:
  helm upgrade --install keda kedacore/keda -n keda --create-namespace --set podIdentity.azureWorkload.enabled=true
Role assignments can take a few minutes to apply.
EOF
