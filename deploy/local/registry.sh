#!/usr/bin/env bash
# Apicurio Registry 3.x (Quarkus fast-jar from Maven Central), SQL storage in PostgreSQL,
# Confluent-compatible API at /apis/ccompat/v7.
# Usage: registry.sh prepare|start|stop|status   (postgres must be up for start)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

REGISTRY_HOME="$BUCKET_CACHE_DIR/apicurio-registry-$BUCKET_APICURIO_VERSION"
REGISTRY_DIR="$BUCKET_STACK_DIR/registry"
REGISTRY_LOG="$BUCKET_LOG_DIR/registry.log"
REGISTRY_PIDFILE="$BUCKET_PID_DIR/registry.pid"
REGISTRY_PID_MARKER="-Dbucket.stack.component=registry:$BUCKET_STACK_DIR"
REGISTRY_HEALTH_URL="$BUCKET_REGISTRY_URL/subjects"
# Storage over TLS, chain and host name verified against the local CA (PostgreSQL accepts only
# hostssl on TCP, deploy/local/postgres.sh); pgjdbc reads the PEM CA file named by sslrootcert.
REGISTRY_JDBC_URL="jdbc:postgresql://$BUCKET_HOST:$BUCKET_PG_PORT/$BUCKET_REGISTRY_PG_DB?$BUCKET_PG_TLS_QUERY"

# Fetch the registry distribution through Maven (honours ~/.m2/settings.xml mirrors and proxies;
# checksums verified). Maven Central lacks the parent POM of apicurio-registry 3.0.9, so the
# artifact's POM cannot be read; maven-dependency-plugin 3.9.0+ `copy` fetches the file without
# reading it (BUCKET_MVN_DEPENDENCY_PLUGIN, docs/decisions/0003-apicurio-3.0.md).
registry_fetch_tarball() {
  local gav="$1" out="$2"
  run_mvn "$BUCKET_MVN_DEPENDENCY_PLUGIN:copy" -Dartifact="$gav" -DoutputDirectory="$out"
}

registry_prepare() {
  ensure_dirs
  [[ -f "$REGISTRY_HOME/.complete" ]] && return 0
  mkdir -p "$BUCKET_CACHE_DIR"
  (
    flock 9
    [[ -f "$REGISTRY_HOME/.complete" ]] && exit 0
    local gav="io.apicurio:apicurio-registry-app:$BUCKET_APICURIO_VERSION:tar.gz:all"
    log "registry: resolving $gav from Maven Central"
    local tmp="$REGISTRY_HOME.tmp"
    rm -rf "$tmp"; mkdir -p "$tmp/dl" "$tmp/app"
    registry_fetch_tarball "$gav" "$tmp/dl" || die "registry: download of $gav failed"
    log "registry: unpacking"
    tar -xzf "$tmp"/dl/*.tar.gz -C "$tmp/app" --no-same-owner
    # 3.0.x ships a legacy "*-runner.jar", newer versions a fast-jar "quarkus-run.jar".
    local run_jar
    run_jar="$(find "$tmp/app" -maxdepth 3 \( -name quarkus-run.jar -o -name '*-runner.jar' \) | head -n1)"
    [[ -n "$run_jar" ]] || die "registry: no quarkus-run.jar / *-runner.jar in tarball"
    rm -rf "$REGISTRY_HOME"
    mv "$(dirname "$run_jar")" "$REGISTRY_HOME"
    basename "$run_jar" >"$REGISTRY_HOME/.runjar"
    rm -rf "$tmp"
    touch "$REGISTRY_HOME/.complete"
  ) 9>"$REGISTRY_HOME.lock"
}

registry_pid() {
  local pid
  pid="$(pid_from_file "$REGISTRY_PIDFILE")" && pid_matches "$pid" "$REGISTRY_PID_MARKER" || return 1
  echo "$pid"
}

registry_http_ok() { curl -fsS -o /dev/null --max-time 5 "$REGISTRY_HEALTH_URL"; }

# The running registry was started with today's datasource URL (a registry started before
# PostgreSQL required TLS is restarted by registry_launch).
registry_current() {
  local pid
  pid="$(registry_pid)" && pid_matches "$pid" "-Dapicurio.datasource.url=$REGISTRY_JDBC_URL "
}

registry_healthy() { registry_pid >/dev/null && registry_current && registry_http_ok; }

registry_launch() {
  ensure_dirs
  if registry_pid >/dev/null; then
    registry_current && return 0
    log "registry: running with an old datasource URL (before PostgreSQL TLS?), restarting"
    registry_stop
  fi
  registry_prepare
  port_open "$BUCKET_REGISTRY_PORT" && die "registry: port $BUCKET_REGISTRY_PORT in use by another process"
  port_open "$BUCKET_REGISTRY_MGMT_PORT" && die "registry: mgmt port $BUCKET_REGISTRY_MGMT_PORT in use by another process"
  "/usr/lib/postgresql/$BUCKET_PG_MAJOR/bin/pg_isready" -q -h "$BUCKET_HOST" -p "$BUCKET_PG_PORT" ||
    die "registry: postgres is not reachable on $BUCKET_HOST:$BUCKET_PG_PORT (run postgres.sh start first)"
  mkdir -p "$REGISTRY_DIR/tmp"
  log "registry: starting Apicurio $BUCKET_APICURIO_VERSION on $BUCKET_HOST:$BUCKET_REGISTRY_PORT (storage: postgresql/$BUCKET_REGISTRY_PG_DB)"
  # shellcheck disable=SC2086
  launch_daemon "$REGISTRY_PIDFILE" "$REGISTRY_LOG" "$REGISTRY_DIR" \
    "$JAVA" $BUCKET_REGISTRY_HEAP_OPTS -XX:+UseSerialGC -Djava.awt.headless=true \
    "$REGISTRY_PID_MARKER" \
    -Djava.io.tmpdir="$REGISTRY_DIR/tmp" \
    -Dquarkus.http.host="$BUCKET_HOST" \
    -Dquarkus.http.port="$BUCKET_REGISTRY_PORT" \
    -Dquarkus.management.host="$BUCKET_HOST" \
    -Dquarkus.management.port="$BUCKET_REGISTRY_MGMT_PORT" \
    -Dquarkus.http.access-log.enabled=false \
    -Dquarkus.log.console.format="%d{yyyy-MM-dd HH:mm:ss,SSS} %-5p [%c{3.}] (%t) %s%e%n" \
    -Dapicurio.storage.kind=sql \
    -Dapicurio.storage.sql.kind=postgresql \
    -Dapicurio.datasource.url="$REGISTRY_JDBC_URL" \
    -Dapicurio.datasource.username="$BUCKET_REGISTRY_PG_USER" \
    -Dapicurio.datasource.password="$BUCKET_REGISTRY_PG_PASSWORD" \
    -Dapicurio.datasource.jdbc.initial-size=2 \
    -Dapicurio.datasource.jdbc.min-size=2 \
    -Dapicurio.datasource.jdbc.max-size=20 \
    -Dapicurio.storage.snapshot.location="$REGISTRY_DIR/tmp" \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -jar "$REGISTRY_HOME/$(cat "$REGISTRY_HOME/.runjar")"
}

registry_wait() {
  local pid
  pid="$(registry_pid)" || { show_log_tail "$REGISTRY_LOG"; die "registry: process not running"; }
  BUCKET_WAIT_PID="$pid" wait_until "$BUCKET_REGISTRY_TIMEOUT" registry registry_http_ok ||
    { show_log_tail "$REGISTRY_LOG"; die "registry: not healthy"; }
  log "registry: healthy (pid $pid)"
}

registry_start() {
  if registry_healthy; then
    log "registry: already running (pid $(registry_pid)), healthy"
    return 0
  fi
  registry_launch
  registry_wait
}

registry_stop() { stop_pid "$REGISTRY_PIDFILE" "$REGISTRY_PID_MARKER" registry; }

registry_status() {
  if registry_healthy; then
    echo "registry  UP    $BUCKET_REGISTRY_URL (pid $(registry_pid))  log: $REGISTRY_LOG"
  else
    echo "registry  DOWN  $BUCKET_REGISTRY_URL  log: $REGISTRY_LOG"; return 1
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    prepare) registry_prepare ;;
    start) registry_start ;;
    stop) registry_stop ;;
    status) registry_status ;;
    *) echo "usage: $0 prepare|start|stop|status" >&2; exit 2 ;;
  esac
fi
