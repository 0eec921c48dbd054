#!/usr/bin/env bash
# PostgreSQL (Debian package) running from a private cluster in $BUCKET_STACK_DIR/postgres.
# Usage: postgres.sh start|stop|status|psql [args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PG_BIN="/usr/lib/postgresql/$BUCKET_PG_MAJOR/bin"
PG_OS_USER=postgres
# The server runs as the 'postgres' OS user, which must be able to reach its data directory.
# When the checkout sits under a private directory (e.g. /root/...), the cluster lives in a
# per-checkout directory under /var/tmp instead; BUCKET_PG_DIR overrides both.
pg_base_dir() {
  if [[ -n "${BUCKET_PG_DIR:-}" ]]; then echo "$BUCKET_PG_DIR"; return; fi
  mkdir -p "$BUCKET_STACK_DIR"
  if id "$PG_OS_USER" >/dev/null 2>&1 && runuser -u "$PG_OS_USER" -- test -x "$BUCKET_STACK_DIR" 2>/dev/null; then
    echo "$BUCKET_STACK_DIR/postgres"
  else
    echo "/var/tmp/bhiv-bucket-$(printf '%s' "$BUCKET_STACK_DIR" | sha1sum | cut -c1-12)/postgres"
  fi
}
PG_BASE="$(pg_base_dir)"
PG_DATA="$PG_BASE/data"
PG_LOG="$PG_BASE/postgres.log"   # written by the postgres user, so beside its data
PG_PIDFILE="$BUCKET_PID_DIR/postgres.pid"

pg_as() { (cd / && runuser -u "$PG_OS_USER" -- "$@"); }

pg_install() {
  [[ -x "$PG_BIN/postgres" ]] && return 0
  log "postgres: installing postgresql-$BUCKET_PG_MAJOR via apt"
  apt-get update -qq
  apt-get install -y -qq "postgresql-$BUCKET_PG_MAJOR" postgresql-client >/dev/null
  # The package may auto-start its own 'main' cluster on 5432 via init scripts; we don't want it.
  if command -v pg_ctlcluster >/dev/null && pg_ctlcluster "$BUCKET_PG_MAJOR" main status >/dev/null 2>&1; then
    pg_ctlcluster "$BUCKET_PG_MAJOR" main stop || true
  fi
  [[ -x "$PG_BIN/postgres" ]] || die "postgres: install failed ($PG_BIN/postgres missing)"
}

pg_ready() { "$PG_BIN/pg_isready" -q -h "$BUCKET_HOST" -p "$BUCKET_PG_PORT" -t 2; }

pg_pid() {
  local pid
  pid="$(pid_from_file "$PG_DATA/postmaster.pid" 2>/dev/null)" || return 1
  echo "$pid"
}

pg_running() { pg_pid >/dev/null && pg_ready; }

pg_init() {
  id "$PG_OS_USER" >/dev/null 2>&1 || die "postgres: OS user '$PG_OS_USER' missing"
  mkdir -p "$PG_BASE"
  chmod 755 "$(dirname "$PG_BASE")" 2>/dev/null || true
  chown "$PG_OS_USER": "$PG_BASE"
  chmod 700 "$PG_BASE"
  pg_as test -w "$PG_BASE" ||
    die "postgres: user '$PG_OS_USER' cannot reach $PG_BASE (a parent dir is not world-searchable?); set BUCKET_PG_DIR elsewhere"
  touch "$PG_LOG"; chown "$PG_OS_USER": "$PG_LOG"
  ln -sfn "$PG_LOG" "$BUCKET_LOG_DIR/postgres.log"
  if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
    log "postgres: initdb $PG_DATA"
    pg_as "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host=scram-sha-256 --no-instructions >>"$PG_LOG" 2>&1 ||
      { show_log_tail "$PG_LOG"; die "postgres: initdb failed"; }
    echo "include_if_exists = 'bucket.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  pg_configure
}

# Server certificate for $BUCKET_HOST/127.0.0.1/localhost signed by the stack's local CA
# ($BUCKET_LOCAL_CA, created with the Kafka TLS material by kafka_tls in kafka.sh, so one CA file
# is trusted for both). Reissued when missing, signed by another CA, issued for another host, or
# within 30 days of expiry; the key is 0600 and owned by postgres, as the server demands.
pg_tls() {
  command -v openssl >/dev/null || die "postgres: openssl is needed for the server certificate"
  declare -F kafka_tls >/dev/null || source "$BUCKET_LOCAL_DIR/kafka.sh"
  [[ "$KAFKA_TLS_DIR/ca.crt" == "$BUCKET_LOCAL_CA" ]] ||
    die "postgres: local CA mismatch ($KAFKA_TLS_DIR/ca.crt vs $BUCKET_LOCAL_CA)"
  mkdir -p "$KAFKA_LOG_DIR"
  kafka_tls
  [[ -s "$KAFKA_TLS_DIR/ca.key" ]] || die "postgres: $KAFKA_TLS_DIR/ca.key missing, cannot sign a server certificate"
  local stamp tmp san="IP:127.0.0.1,DNS:localhost"
  if [[ "$BUCKET_HOST" == 127.0.0.1 || "$BUCKET_HOST" == localhost ]]; then :
  elif [[ "$BUCKET_HOST" =~ ^[0-9.]+$ || "$BUCKET_HOST" == *:* ]]; then san="IP:$BUCKET_HOST,$san"
  else san="DNS:$BUCKET_HOST,$san"; fi
  stamp="$san $(openssl x509 -in "$BUCKET_LOCAL_CA" -noout -fingerprint -sha256)"
  if [[ -s "$PG_DATA/server.crt" && -s "$PG_DATA/server.key" &&
        "$(cat "$PG_DATA/server.tls-stamp" 2>/dev/null)" == "$stamp" ]] &&
     openssl verify -CAfile "$BUCKET_LOCAL_CA" "$PG_DATA/server.crt" >/dev/null 2>&1 &&
     openssl x509 -in "$PG_DATA/server.crt" -noout -checkend 2592000 >/dev/null 2>&1; then
    return 0
  fi
  log "postgres: issuing a server certificate ($san) signed by $BUCKET_LOCAL_CA"
  tmp="$(mktemp -d)"
  (
    set -e
    cd "$tmp"; umask 077
    openssl req -newkey rsa:3072 -sha256 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:FALSE\n' \
      "$san" >server.ext
    openssl x509 -req -in server.csr -CA "$BUCKET_LOCAL_CA" -CAkey "$KAFKA_TLS_DIR/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile server.ext -out server.crt
  ) >>"$PG_LOG" 2>&1 || { rm -rf "$tmp"; show_log_tail "$PG_LOG"; die "postgres: issuing the server certificate failed"; }
  install -o "$PG_OS_USER" -g "$PG_OS_USER" -m 600 "$tmp/server.key" "$PG_DATA/server.key"
  install -o "$PG_OS_USER" -g "$PG_OS_USER" -m 644 "$tmp/server.crt" "$PG_DATA/server.crt"
  rm -rf "$tmp"
  echo "$stamp" >"$PG_DATA/server.tls-stamp"; chown "$PG_OS_USER": "$PG_DATA/server.tls-stamp"
}

# Settings, TLS material and client authentication, rewritten on every start (port overrides
# take effect; a cluster created before TLS gains it). TCP is TLS only: the one TCP rule is
# 'hostssl', so a plaintext TCP connection finds no pg_hba.conf entry and is refused. The Unix
# socket (inside the 0700 data directory) stays for pg_psql's bootstrap.
pg_configure() {
  pg_tls
  cat >"$PG_DATA/bucket.conf" <<EOF
# generated by deploy/local/postgres.sh - do not edit
listen_addresses = '$BUCKET_HOST'
port = $BUCKET_PG_PORT
unix_socket_directories = '$PG_DATA'
max_connections = 200
shared_buffers = 128MB
fsync = on
logging_collector = off
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
EOF
  cat >"$PG_DATA/pg_hba.conf" <<EOF
# generated by deploy/local/postgres.sh - do not edit (rewritten on every start)
# TYPE   DATABASE     USER  ADDRESS   METHOD
local    all          all             trust
local    replication  all             trust
hostssl  all          all   samehost  scram-sha-256
# No 'host' or 'hostnossl' rule: plaintext TCP is refused.
EOF
  chown "$PG_OS_USER": "$PG_DATA/bucket.conf" "$PG_DATA/pg_hba.conf"
}

# A TLS connection as the owner role that verifies chain and host name, as the clients do.
pg_tls_ok() {
  PGPASSWORD="$BUCKET_PG_PASSWORD" PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At \
    "host=$BUCKET_HOST port=$BUCKET_PG_PORT user=$BUCKET_PG_USER dbname=postgres sslmode=verify-full sslrootcert=$BUCKET_LOCAL_CA" \
    -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>/dev/null | grep -qx t
}

pg_psql() { pg_as "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DATA" -p "$BUCKET_PG_PORT" -U postgres "$@"; }

pg_bootstrap_roles() {
  pg_psql -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$BUCKET_PG_USER') THEN
    CREATE ROLE "$BUCKET_PG_USER" LOGIN CREATEROLE CREATEDB PASSWORD '$BUCKET_PG_PASSWORD';
  END IF;
  -- Integration tests create a database per test; the local owner role may create databases.
  ALTER ROLE "$BUCKET_PG_USER" CREATEDB;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$BUCKET_REGISTRY_PG_USER') THEN
    CREATE ROLE "$BUCKET_REGISTRY_PG_USER" LOGIN PASSWORD '$BUCKET_REGISTRY_PG_PASSWORD';
  END IF;
  -- The roles the migrations create (without passwords) with this stack's dev passwords, so
  -- every test database's sink, reader and purger can log in (roles are cluster-wide). A real
  -- deployment sets them from Secrets: bucket sink migrate --sink-role-password file:... .
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bucket_sink') THEN
    CREATE ROLE bucket_sink LOGIN PASSWORD '$BUCKET_LOCAL_PG_SINK_PASSWORD';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bucket_reader') THEN
    CREATE ROLE bucket_reader LOGIN PASSWORD '$BUCKET_LOCAL_PG_READER_PASSWORD';
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bucket_purger') THEN
    CREATE ROLE bucket_purger LOGIN PASSWORD '$BUCKET_LOCAL_PG_PURGER_PASSWORD';
  END IF;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER %I', '$BUCKET_PG_DB', '$BUCKET_PG_USER')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$BUCKET_PG_DB') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', '$BUCKET_REGISTRY_PG_DB', '$BUCKET_REGISTRY_PG_USER')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$BUCKET_REGISTRY_PG_DB') \gexec
SQL
}

pg_start() {
  ensure_dirs
  if pg_running; then
    log "postgres: already running (pid $(pg_pid)), healthy"
    pg_pid >"$PG_PIDFILE"
    # A cluster started before TLS (or with an old certificate) gets it now: ssl and pg_hba.conf
    # take effect on reload.
    pg_configure
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >/dev/null ||
      { show_log_tail "$PG_LOG"; die "postgres: reload failed"; }
    pg_bootstrap_roles
    wait_until 20 "postgres TLS" pg_tls_ok ||
      { show_log_tail "$PG_LOG"; die "postgres: no verified TLS connection after reload (see $PG_LOG)"; }
    return 0
  fi
  pg_install
  if port_open "$BUCKET_PG_PORT"; then
    die "postgres: port $BUCKET_PG_PORT is in use by another process (not our cluster in $PG_DATA)"
  fi
  pg_init
  log "postgres: starting on $BUCKET_HOST:$BUCKET_PG_PORT"
  # pg_ctl daemonizes postgres itself (setsid) so it survives this shell.
  if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$BUCKET_PG_TIMEOUT" start >/dev/null; then
    show_log_tail "$PG_LOG"; die "postgres: failed to start"
  fi
  if ! wait_until "$BUCKET_PG_TIMEOUT" postgres pg_ready; then
    show_log_tail "$PG_LOG"; die "postgres: not healthy"
  fi
  pg_pid >"$PG_PIDFILE"
  pg_bootstrap_roles
  wait_until 20 "postgres TLS" pg_tls_ok ||
    { show_log_tail "$PG_LOG"; die "postgres: no verified TLS connection (see $PG_LOG)"; }
  log "postgres: healthy (pid $(pg_pid)), TLS only on TCP (CA $BUCKET_LOCAL_CA)"
}

pg_stop() {
  if [[ -s "$PG_DATA/postmaster.pid" ]] && pg_pid >/dev/null; then
    log "postgres: stopping"
    pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$BUCKET_STOP_TIMEOUT" stop >/dev/null 2>&1 ||
      pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    log "postgres: stopped"
  else
    log "postgres: not running"
  fi
  rm -f "$PG_PIDFILE"
}

pg_status() {
  if pg_running; then
    echo "postgres  UP    postgres://$BUCKET_HOST:$BUCKET_PG_PORT (pid $(pg_pid))  log: $PG_LOG"
  else
    echo "postgres  DOWN  postgres://$BUCKET_HOST:$BUCKET_PG_PORT  log: $PG_LOG"; return 1
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    start) pg_start ;;
    stop) pg_stop ;;
    status) pg_status ;;
    psql) shift; pg_psql "$@" ;;
    *) echo "usage: $0 start|stop|status|psql [args]" >&2; exit 2 ;;
  esac
fi
