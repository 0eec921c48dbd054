#!/usr/bin/env bash
# Stop the local stack (s3, registry, kafka, redis, postgres). Data is kept.
# down.sh --purge additionally deletes $BUCKET_STACK_DIR (all data + logs).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
source "$HERE/postgres.sh"
source "$HERE/redis.sh"
source "$HERE/kafka.sh"
source "$HERE/registry.sh"
source "$HERE/s3.sh"

purge=0
case "${1:-}" in
  --purge) purge=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

s3_stop
registry_stop
kafka_stop
redis_stop
pg_stop

if (( purge )); then
  case "$BUCKET_STACK_DIR" in
    ""|/|"$HOME"|"$BUCKET_REPO_ROOT") die "refusing to purge suspicious BUCKET_STACK_DIR='$BUCKET_STACK_DIR'" ;;
  esac
  log "purging $BUCKET_STACK_DIR"
  rm -rf -- "$BUCKET_STACK_DIR"
  case "$PG_BASE" in
    /var/tmp/bhiv-bucket-*/postgres) log "purging $(dirname "$PG_BASE")"; rm -rf -- "$(dirname "$PG_BASE")" ;;
  esac
fi
