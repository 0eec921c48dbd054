# shellcheck shell=bash
# Shared settings + helpers for the local BHIV Bucket dev stack.
# Sourced by up.sh / down.sh / status.sh / <component>.sh. Every value can be
# overridden from the environment before calling any script.

if [[ -n "${_BUCKET_ENV_SOURCED:-}" ]]; then return 0; fi
_BUCKET_ENV_SOURCED=1

BUCKET_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUCKET_REPO_ROOT="$(cd "$BUCKET_LOCAL_DIR/../.." && pwd)"

# ---- locations -------------------------------------------------------------
: "${BUCKET_STACK_DIR:=$BUCKET_REPO_ROOT/.stack}"           # data, logs, pids (per checkout)
: "${BUCKET_CACHE_DIR:=${HOME:-/root}/.cache/bhiv-bucket}"  # downloaded jars (shared)
BUCKET_LOG_DIR="$BUCKET_STACK_DIR/logs"
BUCKET_PID_DIR="$BUCKET_STACK_DIR/pids"

# ---- pinned versions -------------------------------------------------------
: "${BUCKET_KAFKA_VERSION:=4.1.1}"
: "${BUCKET_APICURIO_VERSION:=3.0.9}"   # 3.3.x needs Java 21; Debian 12 has 17
: "${BUCKET_PG_MAJOR:=15}"
: "${BUCKET_VERSITYGW_VERSION:=v1.8.0}"  # S3 server, from the Go module proxy (deploy/local/s3.sh)
# 3.9.0 or later: `copy` resolves the artifact file without reading its POM (older versions read
# the POM and fail on Apicurio 3.0.9, whose parent POM is not on Maven Central; see registry.sh).
: "${BUCKET_MVN_DEPENDENCY_PLUGIN:=org.apache.maven.plugins:maven-dependency-plugin:3.9.0}"

# ---- endpoints (all loopback) ----------------------------------------------
: "${BUCKET_HOST:=127.0.0.1}"
: "${BUCKET_PG_PORT:=5432}"
: "${BUCKET_REDIS_PORT:=6379}"
: "${BUCKET_KAFKA_PORT:=9092}"
: "${BUCKET_KAFKA_CONTROLLER_PORT:=9093}"
: "${BUCKET_KAFKA_SASL_PORT:=9094}"     # SASL_SSL (SCRAM-SHA-512 over TLS), docs/security.md
: "${BUCKET_KAFKA_MTLS_PORT:=9095}"     # SSL with client certificates (production profile only)
: "${BUCKET_REGISTRY_PORT:=8081}"
: "${BUCKET_REGISTRY_MGMT_PORT:=8091}"   # Quarkus management interface (/q/health)
: "${BUCKET_S3_PORT:=8333}"              # S3 API over HTTPS (versitygw, deploy/local/s3.sh)
: "${BUCKET_S3_ADMIN_PORT:=8334}"        # its admin API over HTTPS (users, bucket owners)

# ---- profile ---------------------------------------------------------------
# plain (the laptop default: Kafka also on PLAINTEXT with an anonymous super user, Redis without
# TLS) or production (Kafka on SASL_SSL and mTLS only with the authorizer on, Redis over TLS with
# ACL users; every client with its own identity, deploy/local/identity.sh). `up.sh --profile NAME`
# records the choice in $BUCKET_STACK_DIR/profile; it holds until changed (docs/deploying.md).
if [[ -z "${BUCKET_PROFILE:-}" ]]; then
  BUCKET_PROFILE="$(cat "$BUCKET_STACK_DIR/profile" 2>/dev/null || echo plain)"
fi
case "$BUCKET_PROFILE" in plain|production) ;; *) echo "BUCKET_PROFILE must be plain or production, got '$BUCKET_PROFILE'" >&2; exit 2 ;; esac

# ---- credentials (dev only) ------------------------------------------------
: "${BUCKET_PG_USER:=bucket}"
: "${BUCKET_PG_PASSWORD:=bucket}"
: "${BUCKET_PG_DB:=bucket}"
: "${BUCKET_LOCAL_PG_SINK_PASSWORD:=bucket_sink}"       # roles the migrations create (postgres.sh)
: "${BUCKET_LOCAL_PG_READER_PASSWORD:=bucket_reader}"
: "${BUCKET_LOCAL_PG_PURGER_PASSWORD:=bucket_purger}"
: "${BUCKET_REGISTRY_PG_USER:=apicurio}"
: "${BUCKET_REGISTRY_PG_PASSWORD:=apicurio}"
: "${BUCKET_REGISTRY_PG_DB:=apicurio}"
# S3 (content objects): one bucket, one identity per role (deploy/local/s3.sh).
: "${BUCKET_S3_BUCKET:=bucket-content}"
: "${BUCKET_S3_ADMIN_ACCESS_KEY_ID:=bucket-admin}"
: "${BUCKET_S3_ADMIN_SECRET_ACCESS_KEY:=bucket-admin-secret}"
: "${BUCKET_S3_SINK_ACCESS_KEY_ID:=bucket-sink}"
: "${BUCKET_S3_SINK_SECRET_ACCESS_KEY:=bucket-sink-secret}"
: "${BUCKET_S3_JANITOR_ACCESS_KEY_ID:=bucket-janitor}"
: "${BUCKET_S3_JANITOR_SECRET_ACCESS_KEY:=bucket-janitor-secret}"
: "${BUCKET_S3_READER_ACCESS_KEY_ID:=bucket-reader}"
: "${BUCKET_S3_READER_SECRET_ACCESS_KEY:=bucket-reader-secret}"

# ---- JVM / timeouts --------------------------------------------------------
: "${JAVA:=java}"
: "${BUCKET_KAFKA_HEAP_OPTS:=-Xms256m -Xmx1g}"
: "${BUCKET_REGISTRY_HEAP_OPTS:=-Xms128m -Xmx512m}"
: "${BUCKET_PG_TIMEOUT:=60}"
: "${BUCKET_REDIS_TIMEOUT:=20}"
: "${BUCKET_KAFKA_TIMEOUT:=90}"
: "${BUCKET_REGISTRY_TIMEOUT:=120}"
: "${BUCKET_S3_TIMEOUT:=60}"
: "${BUCKET_STOP_TIMEOUT:=30}"

export DEBIAN_FRONTEND=noninteractive

# Derived, handy for clients.
BUCKET_KAFKA_BOOTSTRAP="$BUCKET_HOST:$BUCKET_KAFKA_PORT"
BUCKET_KAFKA_SASL_BOOTSTRAP="$BUCKET_HOST:$BUCKET_KAFKA_SASL_PORT"
BUCKET_REGISTRY_URL="http://$BUCKET_HOST:$BUCKET_REGISTRY_PORT/apis/ccompat/v7"
BUCKET_KAFKA_MTLS_BOOTSTRAP="$BUCKET_HOST:$BUCKET_KAFKA_MTLS_PORT"
# Redis: the gate's user over TLS in production; its password is the file reference
# file:$BUCKET_REDIS_SECRETS_DIR/gate.password (written by redis.sh), the CA is $BUCKET_LOCAL_CA.
BUCKET_REDIS_SECRETS_DIR="$BUCKET_STACK_DIR/redis/secrets"
if [[ "$BUCKET_PROFILE" == production ]]; then
  BUCKET_REDIS_URL="rediss://gate@$BUCKET_HOST:$BUCKET_REDIS_PORT"
else
  BUCKET_REDIS_URL="redis://$BUCKET_HOST:$BUCKET_REDIS_PORT"
fi
BUCKET_S3_ENDPOINT="https://$BUCKET_HOST:$BUCKET_S3_PORT"
BUCKET_CONTENT_STORE_URL="s3://$BUCKET_S3_BUCKET"
# PostgreSQL serves TLS only (hostssl, deploy/local/postgres.sh); its server certificate is signed
# by the stack's local CA (made with the Kafka TLS material, deploy/local/kafka.sh). Clients verify
# chain and host name: sslmode=verify-full (docs/security.md, "PostgreSQL TLS").
BUCKET_LOCAL_CA="$BUCKET_STACK_DIR/kafka/tls/ca.crt"
BUCKET_PG_TLS_QUERY="sslmode=verify-full&sslrootcert=${BUCKET_LOCAL_CA// /%20}"
BUCKET_DATABASE_URL="postgres://$BUCKET_PG_USER:$BUCKET_PG_PASSWORD@$BUCKET_HOST:$BUCKET_PG_PORT/$BUCKET_PG_DB?$BUCKET_PG_TLS_QUERY"

# ---- helpers ---------------------------------------------------------------
log()  { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

ensure_dirs() { mkdir -p "$BUCKET_STACK_DIR" "$BUCKET_LOG_DIR" "$BUCKET_PID_DIR" "$BUCKET_CACHE_DIR"; }

# port_open PORT -> 0 if something accepts TCP on BUCKET_HOST:PORT
port_open() { (exec 3<>"/dev/tcp/$BUCKET_HOST/$1") 2>/dev/null; }

# pid_alive PID -> running and not a zombie
pid_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != "Z" ]]
}

# pid_from_file FILE -> prints pid if file exists and process is alive
pid_from_file() {
  local f="$1" pid
  [[ -s "$f" ]] || return 1
  pid="$(head -n1 "$f" | tr -dc '0-9')"
  [[ -n "$pid" ]] && pid_alive "$pid" || return 1
  echo "$pid"
}

# pid_matches PID PATTERN -> process cmdline contains PATTERN (guards against pid reuse)
pid_matches() {
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

# wait_until TIMEOUT_S DESCRIPTION CMD... -> polls CMD every 0.5s
# If BUCKET_WAIT_PID is set and that process dies, give up early.
wait_until() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  while ! "$@" >/dev/null 2>&1; do
    if [[ -n "${BUCKET_WAIT_PID:-}" ]] && ! pid_alive "$BUCKET_WAIT_PID"; then
      log "$what: process $BUCKET_WAIT_PID exited"
      return 1
    fi
    if (( SECONDS >= deadline )); then
      log "$what: not healthy after ${timeout}s"
      return 1
    fi
    sleep 0.5
  done
}

# stop_pid PIDFILE PATTERN NAME -> TERM, wait, then KILL
stop_pid() {
  local pidfile="$1" pattern="$2" name="$3" pid
  if ! pid="$(pid_from_file "$pidfile")" || ! pid_matches "$pid" "$pattern"; then
    log "$name: not running"
    rm -f "$pidfile"
    return 0
  fi
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + BUCKET_STOP_TIMEOUT))
  while pid_alive "$pid"; do
    if (( SECONDS >= deadline )); then
      log "$name: still alive after ${BUCKET_STOP_TIMEOUT}s, sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  rm -f "$pidfile"
  log "$name: stopped"
}

# show_log_tail FILE [N]
show_log_tail() {
  local f="$1" n="${2:-40}"
  if [[ -f "$f" ]]; then
    echo "----- last $n lines of $f -----" >&2
    tail -n "$n" "$f" >&2
    echo "-----" >&2
  fi
}

# launch_daemon PIDFILE LOGFILE WORKDIR CMD... -> detached (survives the calling shell)
launch_daemon() {
  local pidfile="$1" logfile="$2" workdir="$3"; shift 3
  rm -f "$pidfile"
  # The inner shell writes its own pid then execs CMD, so the pid file is exact
  # whether or not setsid had to fork. All fds of the launcher are detached so no
  # caller pipe is held open.
  (
    cd "$workdir" || exit 1
    exec setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null
  ) >/dev/null 2>&1 </dev/null &
  local i
  for i in $(seq 1 50); do [[ -s "$pidfile" ]] && return 0; sleep 0.1; done
  die "failed to launch: $*"
}

# run_mvn ARGS... (batch mode, quiet, strict checksums; prints Maven's output on failure).
# Every download goes through Maven, so ~/.m2/settings.xml mirrors and proxies apply.
run_mvn() {
  local out; out="$(mktemp)"
  if ! mvn -B -q -C "$@" >"$out" 2>&1; then
    cat "$out" >&2; rm -f "$out"; return 1
  fi
  rm -f "$out"
}
