#!/usr/bin/env bash
# The main job on one machine: local stack up, gate and sink running, a demo that produces good
# and bad intents, and where each one landed. Leaves the stack, gate and sink running;
# `deploy/demo.sh stop` stops the gate and sink, `deploy/local/down.sh` the stack.
#
# The stack's profile (deploy/local/env.sh) is kept, or chosen with BUCKET_PROFILE:
#   BUCKET_PROFILE=production deploy/demo.sh   Kafka on SASL_SSL and mTLS only with ACLs, Redis
#                                              over TLS; each process is its own principal
# BUCKET_DEMO_BUILD=dev runs the debug build, =prebuilt the debug binary already built (the
# test run: building `--bin bucket` alone would resolve features differently and rebuild),
# release otherwise.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source deploy/local/env.sh
RUN="$BUCKET_STACK_DIR/run"
mkdir -p "$RUN"
BUILD="${BUCKET_DEMO_BUILD:-release}"
case "$BUILD" in
  release) BIN="$ROOT/target/release/bucket"; BUILD_FLAGS=(--release) ;;
  dev|prebuilt) BIN="$ROOT/target/debug/bucket"; BUILD_FLAGS=() ;;
  *) echo "BUCKET_DEMO_BUILD must be release, dev or prebuilt" >&2; exit 2 ;;
esac
step() { printf '\n==> %s\n' "$*"; }
# as ROLE CMD...: CMD with the Kafka (and Redis) identity of ROLE on this stack's profile
# (deploy/local/identity.sh: admin, gate, sink, auditor, product).
# ids ROLE: the same settings in the array IDS, for processes started in the background (env
# execs them, so $! stays their pid).
ids() { mapfile -t IDS < <(bash deploy/local/identity.sh "$1"); }
as() {
  local role="$1"; shift
  ids "$role"
  env "${IDS[@]}" "$@"
}

stop_services() {
  local pidfile svc
  for pidfile in "$RUN"/gate*.pid "$RUN"/sink*.pid "$RUN"/api.pid "$RUN"/tiles.pid; do
    [[ -e "$pidfile" ]] || continue
    svc="$(basename "$pidfile" .pid)"
    if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill -TERM "$(cat "$pidfile")" || true
      for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
      echo "stopped $svc"
    fi
    rm -f "$pidfile"
  done
}
if [[ "${1:-}" == "stop" ]]; then stop_services; exit 0; fi

step "local stack (profile $BUCKET_PROFILE)"
bash deploy/local/up.sh --profile "$BUCKET_PROFILE"

if [[ "$BUILD" == prebuilt ]]; then
  [[ -x "$BIN" ]] || { echo "BUCKET_DEMO_BUILD=prebuilt: $BIN is not built" >&2; exit 2; }
else
  step "build ($BUILD)"
  cargo build "${BUILD_FLAGS[@]}" --locked --bin bucket
fi

export BUCKET_REGISTRY_URL BUCKET_PG_URL="$BUCKET_DATABASE_URL"
step "topics and schemas as code (as the admin)"
as admin "$BIN" topics apply --profile local
as admin "$BIN" schemas apply
if [[ "$BUCKET_PROFILE" == production ]]; then
  step "ACLs as code (deploy/acls.toml): from here on each process has only what its principal is granted"
  as admin "$BIN" acls apply
fi

# The operator's pin: the demo approvers (DEMO ONLY keys in deploy/demo/approvers) of whom two
# signed deploy/policy.toml (deploy/policy.toml.approvals/); later policy changes need two
# signatures of the approvers the policy in force names (docs/policy.md, "Approvals").
PIN=(--approvers deploy/demo/approvers/allowed_signers --approvals-required 2)
step "policy approvals (bucket policy check deploy/policy.toml --approvers ...)"
"$BIN" policy check deploy/policy.toml "${PIN[@]}"

# BUCKET_DEMO_GATES=N runs N gate instances as a StatefulSet would: ids gate-0..gate-<N-1>, each
# with its own state directory and admin port (gate-0 on :9600, gate-i on :961i)
# (docs/runbook.md, "Instance ids"); BUCKET_DEMO_STANDBYS=K gives each partition K standby
# tasks on the other gates (--standby-replicas). BUCKET_DEMO_SINKS=M runs M sinks, ids
# sink-0..sink-<M-1> (sink-0's admin on :9601, sink-i on :962i).
GATES="${BUCKET_DEMO_GATES:-1}"
SINKS="${BUCKET_DEMO_SINKS:-1}"
STANDBYS="${BUCKET_DEMO_STANDBYS:-0}"
step "gate ($GATES instance(s), $STANDBYS standby replica(s)) and sink ($SINKS instance(s))"
stop_services
for i in $(seq 0 $((GATES - 1))); do
  name=gate; admin=127.0.0.1:9600
  if (( i > 0 )); then name="gate-$i"; admin="127.0.0.1:$((9610 + i))"; fi
  ids gate
  env "${IDS[@]}" setsid nohup "$BIN" gate --instance-id "gate-$i" --policy deploy/policy.toml "${PIN[@]}" \
    --audit-key-file deploy/demo/keys/gate.audit1.ed25519 --checkpoint-interval-s 2 \
    --state-dir "$RUN/state/gate-$i" --admin-addr "$admin" --standby-replicas "$STANDBYS" \
    >"$RUN/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  echo "gate-$i pid $(cat "$RUN/$name.pid"), log $RUN/$name.log, admin http://$admin/status"
done
# Content goes to the local S3 server (versitygw, HTTPS): the sink with the identity that may
# write the bucket, the read API with the one that may only read it (deploy/local/s3.sh).
S3=(BUCKET_CONTENT_STORE="$BUCKET_CONTENT_STORE_URL" BUCKET_S3_ENDPOINT="$BUCKET_S3_ENDPOINT"
    BUCKET_S3_CA_FILE="$BUCKET_LOCAL_CA")
for i in $(seq 0 $((SINKS - 1))); do
  name=sink; admin=127.0.0.1:9601
  if (( i > 0 )); then name="sink-$i"; admin="127.0.0.1:$((9620 + i))"; fi
  ids sink
  env "${IDS[@]}" "${S3[@]}" BUCKET_S3_ACCESS_KEY_ID="$BUCKET_S3_SINK_ACCESS_KEY_ID" \
    BUCKET_S3_SECRET_ACCESS_KEY="$BUCKET_S3_SINK_SECRET_ACCESS_KEY" \
    setsid nohup "$BIN" sink --migrate --instance-id "sink-$i" --admin-addr "$admin" \
    >"$RUN/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  echo "sink-$i pid $(cat "$RUN/$name.pid"), log $RUN/$name.log, admin http://$admin/status"
done

step "wait for readiness (/readyz: every assigned partition restored and deciding)"
for _ in $(seq 1 600); do curl -fs http://127.0.0.1:9600/readyz >/dev/null 2>&1 && break; sleep 0.1; done
curl -s http://127.0.0.1:9600/readyz | python3 -c 'import json,sys; r=json.load(sys.stdin); print("gate-0 ready:", r["ready"], "-", r["checks"].get("tasks", {}).get("detail", ""))' || true

step "produce the demo intents (deploy/demo/intents.jsonl: good and bad)"
# The truncated-Avro demo line needs the registry's id of the approved intent schema.
intent_id="$(as admin "$BIN" schemas apply | awk '/bucket.intents-value/ {print $3}')"
sed "s/\"raw_value_hex\":\"0000000014\"/\"raw_value_hex\":\"$(printf '00%08x' "$intent_id")\"/" \
  deploy/demo/intents.jsonl | as product "$BIN" produce --keys-dir deploy/demo/keys --file -

step "decisions (bucket audit tail --from-beginning --until-end --summary)"
sleep 3
as auditor "$BIN" audit tail --from-beginning --until-end --summary

step "verify the audit log (chains, signed checkpoints, completeness against bucket.intents)"
sleep 3
as auditor "$BIN" audit verify --policy deploy/policy.toml "${PIN[@]}"

step "transparency log: tiles, one decision's proof, checked offline with only the public key"
# The verifier key of the gate's audit key (policy [audit] keys) under this deployment's name.
VKEY="$("$BIN" audit verifier-key --deployment bhiv-bucket \
  --public-key 5bOyedadWnSyhnPNww9HJld44c5/av/OI+r1EfBROuU=)"
echo "verifier key: $VKEY"
rm -rf "$RUN/tlog"
ids auditor
env "${IDS[@]}" setsid nohup "$BIN" audit tiles --dir "$RUN/tlog" --follow --key "$VKEY" \
  >"$RUN/tiles.log" 2>&1 < /dev/null &
echo $! >"$RUN/tiles.pid"
# The gate signs a checkpoint within --checkpoint-interval-s of the last decisions.
for _ in $(seq 1 100); do
  "$BIN" audit prove --dir "$RUN/tlog" --product ai_assistant --artifact faq-1 --version 1 \
    --out "$RUN/proof.json" >/dev/null 2>&1 && break
  sleep 0.2
done
"$BIN" audit check-proof "$RUN/proof.json" --key "$VKEY"

step "read API (bucket api on 127.0.0.1:8088, demo tokens from deploy/api-tokens.toml)"
env "${S3[@]}" BUCKET_S3_ACCESS_KEY_ID="$BUCKET_S3_READER_ACCESS_KEY_ID" \
  BUCKET_S3_SECRET_ACCESS_KEY="$BUCKET_S3_READER_SECRET_ACCESS_KEY" \
  setsid nohup "$BIN" api --tlog-dir "$RUN/tlog" >"$RUN/api.log" 2>&1 < /dev/null &
echo $! >"$RUN/api.pid"
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:8088/healthz >/dev/null 2>&1 && break; sleep 0.1; done
curl -s -H "Authorization: Bearer demo-ai-assistant-token" http://127.0.0.1:8088/v1/products/ai_assistant/usage; echo
# The same proof bundle through the API, for the product's own token only.
curl -s -H "Authorization: Bearer demo-ai-assistant-token" \
  http://127.0.0.1:8088/v1/products/ai_assistant/artifacts/faq-1/versions/1/proof >"$RUN/proof-api.json"
"$BIN" audit check-proof "$RUN/proof-api.json" --key "$VKEY"
# The standard C2SP tlog-proof form of the same proof (the record in its `extra` line).
curl -s -H "Authorization: Bearer demo-ai-assistant-token" \
  "http://127.0.0.1:8088/v1/products/ai_assistant/artifacts/faq-1/versions/1/proof?format=tlog-proof" \
  >"$RUN/proof.tlog-proof"
"$BIN" audit check-proof "$RUN/proof.tlog-proof" --key "$VKEY"
# And with an implementation we did not write: Go's sumdb note and tlog packages.
if command -v go >/dev/null; then
  (cd tests/tlog-go && go run . -vkey "$VKEY" -bundle "$RUN/proof.tlog-proof" \
    && go run . -vkey "$VKEY" -dir "$RUN/tlog/0" -new "$RUN/tlog/0/checkpoint") \
    || echo "the Go verifier did not pass (see above)"
fi

step "stored artifact versions (PostgreSQL, table artifact_versions; content in S3)"
sleep 1
# The same URL as the sink (TLS, sslmode=verify-full against the local CA).
psql "$BUCKET_DATABASE_URL" \
  -c "SELECT product_id, artifact_id, version, operation, deleted, content_size, left(policy_version, 12) AS policy, content_object FROM artifact_versions ORDER BY stored_at DESC LIMIT 20"

step "content through the read API, streamed from the object store (ETag, Range, 304)"
ART=http://127.0.0.1:8088/v1/products/ai_assistant/artifacts/faq-1
AUTH=(-H "Authorization: Bearer demo-ai-assistant-token")
curl -s -D - -o "$RUN/faq-1.content" "${AUTH[@]}" "$ART/content" | grep -i -E '^(HTTP|etag|content-length)'
echo "bytes: $(wc -c <"$RUN/faq-1.content"), sha256: $(sha256sum "$RUN/faq-1.content" | cut -c1-64)"
ETAG="$(curl -s -D - -o /dev/null "${AUTH[@]}" "$ART/content" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')"
curl -s -o /dev/null -w 'If-None-Match: %{http_code}\n' "${AUTH[@]}" -H "If-None-Match: $ETAG" "$ART/content"
curl -s -w '  <- Range bytes=0-15: %{http_code}\n' "${AUTH[@]}" -H "Range: bytes=0-15" "$ART/content"

cat <<TXT

Where to look:
  accepted artifacts   topic bucket.accepted   (read_committed), table artifact_versions
  rejected originals   topic bucket.rejected   (reason in bucket.errors.* headers)
  audit chain          topic bucket.audit      ($BIN audit tail --from-beginning --json)
  verify the log       $BIN audit verify
  prove a decision     $BIN audit prove --dir $RUN/tlog --intent-id ID  (check: $BIN audit check-proof FILE --key "$VKEY")
  read API             http://127.0.0.1:8088 (docs/api.md; token demo-ai-assistant-token)
  content objects      $BUCKET_CONTENT_STORE_URL at $BUCKET_S3_ENDPOINT (column content_object)
  gate / sink / api    $RUN/gate.log, $RUN/sink.log, $RUN/api.log, $RUN/tiles.log
  stack logs           $BUCKET_LOG_DIR
  stop                 deploy/demo.sh stop && deploy/local/down.sh
TXT
