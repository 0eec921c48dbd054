#!/usr/bin/env bash
# Signs a policy file as demo approvers (DEMO ONLY keys in this folder), the way a real approver
# signs with their own key (docs/runbook.md, "Change the policy"):
#
#   ssh-keygen -Y sign -n bucket-policy -f ~/.ssh/id_ed25519 < policy.toml > policy.toml.approvals/NAME.sig
#
# Usage: deploy/demo/approvers/sign.sh [POLICY] [NAME...]   (default: deploy/policy.toml alice bob)
# Replaces POLICY.approvals/ with fresh signatures of the named demo approvers.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
POLICY="${1:-$ROOT/deploy/policy.toml}"
shift || true
NAMES=("$@")
(( ${#NAMES[@]} )) || NAMES=(alice bob)
command -v ssh-keygen >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
rm -rf "$POLICY.approvals"
mkdir -p "$POLICY.approvals"
for name in "${NAMES[@]}"; do
  # git does not keep 0600, and ssh-keygen refuses a private key others can read.
  install -m 600 "$HERE/$name" "$TMP/$name"
  ssh-keygen -q -Y sign -n bucket-policy -f "$TMP/$name" <"$POLICY" >"$POLICY.approvals/$name.sig"
  echo "signed $POLICY as $name -> $POLICY.approvals/$name.sig"
done
