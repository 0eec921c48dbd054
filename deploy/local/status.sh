#!/usr/bin/env bash
# Print the health of each component; exit 1 if any is down.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/env.sh"
source "$HERE/postgres.sh"
source "$HERE/redis.sh"
source "$HERE/kafka.sh"
source "$HERE/registry.sh"
source "$HERE/s3.sh"
set +e

rc=0
pg_status || rc=1
redis_status || rc=1
kafka_status || rc=1
registry_status || rc=1
s3_status || rc=1
exit $rc
