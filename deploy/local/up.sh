#!/usr/bin/env bash
# Install (if needed) and start the local stack: postgres, redis, kafka, registry, s3.
# Idempotent: healthy components are left alone. Exits non-zero (with a log tail)
# if a component does not become healthy.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
source "$HERE/postgres.sh"
source "$HERE/redis.sh"
source "$HERE/kafka.sh"
source "$HERE/registry.sh"
source "$HERE/s3.sh"

start_ts=$SECONDS
ensure_dirs
log "stack dir: $BUCKET_STACK_DIR   cache dir: $BUCKET_CACHE_DIR"

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

  postgres  postgres://$BUCKET_PG_USER:$BUCKET_PG_PASSWORD@$BUCKET_HOST:$BUCKET_PG_PORT/$BUCKET_PG_DB
            log: $PG_LOG
  redis     $BUCKET_REDIS_URL
            log: $REDIS_LOG
  kafka     $BUCKET_KAFKA_BOOTSTRAP  (Kafka $BUCKET_KAFKA_VERSION, KRaft, controller :$BUCKET_KAFKA_CONTROLLER_PORT)
            log: $KAFKA_LOG
  registry  $BUCKET_REGISTRY_URL  (Apicurio $BUCKET_APICURIO_VERSION, ccompat)
            log: $REGISTRY_LOG
  s3        $BUCKET_S3_ENDPOINT  bucket $BUCKET_S3_BUCKET  (versitygw $BUCKET_VERSITYGW_VERSION, HTTPS, local CA)
            log: $S3_LOG
  pids:     $BUCKET_PID_DIR

EOF
