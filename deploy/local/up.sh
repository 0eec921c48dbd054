#!/usr/bin/env bash
# Install (if needed) and start the local stack: postgres, redis, kafka, registry, s3.
# Idempotent: healthy components are left alone. Exits non-zero (with a log tail)
# if a component does not become healthy.
#
#   up.sh [--profile plain|production]
#
# --profile chooses the security profile (deploy/local/env.sh) and records it in
# $BUCKET_STACK_DIR/profile for every later script; without it the recorded one (default plain)
# is used. Kafka and Redis running with the other profile are restarted with this one.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-}" in
  --profile)
    case "${2:-}" in plain|production) ;; *) echo "usage: $0 [--profile plain|production]" >&2; exit 2 ;; esac
    export BUCKET_PROFILE="$2"
    ;;
  "") ;;
  *) echo "usage: $0 [--profile plain|production]" >&2; exit 2 ;;
esac
source "$HERE/env.sh"
source "$HERE/postgres.sh"
source "$HERE/redis.sh"
source "$HERE/kafka.sh"
source "$HERE/registry.sh"
source "$HERE/s3.sh"

start_ts=$SECONDS
ensure_dirs
echo "$BUCKET_PROFILE" >"$BUCKET_STACK_DIR/profile"
log "stack dir: $BUCKET_STACK_DIR   cache dir: $BUCKET_CACHE_DIR   profile: $BUCKET_PROFILE"
# A service configured for the other profile is restarted with this one.
if kafka_pid >/dev/null && [[ "$(kafka_running_profile)" != "$BUCKET_PROFILE" ]]; then
  log "kafka: running with profile '$(kafka_running_profile)', restarting with '$BUCKET_PROFILE'"
  kafka_stop
fi
if redis_pid >/dev/null && [[ "$(redis_running_profile)" != "$BUCKET_PROFILE" ]]; then
  log "redis: running with profile '$(redis_running_profile)', restarting with '$BUCKET_PROFILE'"
  BUCKET_PROFILE="$(redis_running_profile)" redis_stop
fi

# Jar downloads/unpacking (no-ops when cached) run alongside postgres/redis startup.
kafka_prepare & kafka_prep_pid=$!
registry_prepare & registry_prep_pid=$!
# versitygw is installed once per pinned version (Go module proxy), alongside the rest.
s3_install & s3_install_pid=$!

pg_start
redis_start

wait "$kafka_prep_pid" || die "kafka: preparing jars failed"
if kafka_healthy; then
  log "kafka: already running (pid $(kafka_pid)), healthy"; kafka_ok=1
else
  kafka_launch; kafka_ok=0
fi

wait "$registry_prep_pid" || die "registry: preparing Apicurio failed"
if registry_healthy; then
  log "registry: already running (pid $(registry_pid)), healthy"; registry_ok=1
else
  registry_launch; registry_ok=0
fi

(( kafka_ok )) || kafka_wait
(( registry_ok )) || registry_wait
wait "$s3_install_pid" || die "s3: installing versitygw failed"
s3_start

log "stack up in $((SECONDS - start_ts))s"
cat <<EOF

  profile   $BUCKET_PROFILE  (identities: deploy/local/identity.sh ROLE)
  postgres  postgres://$BUCKET_PG_USER:$BUCKET_PG_PASSWORD@$BUCKET_HOST:$BUCKET_PG_PORT/$BUCKET_PG_DB
            log: $PG_LOG
  redis     $BUCKET_HOST:$BUCKET_REDIS_PORT$([[ $BUCKET_PROFILE == production ]] && echo "  (TLS, ACL users admin and gate)")
            log: $REDIS_LOG
  kafka     $(kafka_listeners_text)  (Kafka $BUCKET_KAFKA_VERSION, KRaft, controller :$BUCKET_KAFKA_CONTROLLER_PORT)
            log: $KAFKA_LOG
  registry  $BUCKET_REGISTRY_URL  (Apicurio $BUCKET_APICURIO_VERSION, ccompat)
            log: $REGISTRY_LOG
  s3        $BUCKET_S3_ENDPOINT  bucket $BUCKET_S3_BUCKET  (versitygw $BUCKET_VERSITYGW_VERSION, HTTPS, local CA)
            log: $S3_LOG
  pids:     $BUCKET_PID_DIR

EOF
