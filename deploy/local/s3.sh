#!/usr/bin/env bash
# The local S3 server for artifact content (docs/decisions/0018): SeaweedFS (`weed mini`: master,
# volume, filer and S3 gateway in one process), built once from the Go module proxy with the
# pinned wrapper module in deploy/local/seaweedfs/ and cached in $BUCKET_CACHE_DIR.
#
# HTTPS only, with a server certificate signed by the stack's local CA (like PostgreSQL), and
# three identities with the least each needs (deploy/local/s3/identities.json is generated):
#   bucket-admin   creates the bucket (the stack scripts only)
#   bucket-sink    Read, Write, List on the content bucket (the sink and its jobs)
#   bucket-reader  Read, List on the content bucket (the read API)
# Usage: s3.sh start|stop|status|build
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

S3_DIR="$BUCKET_STACK_DIR/s3"
S3_LOG="$BUCKET_LOG_DIR/s3.log"
S3_PIDFILE="$BUCKET_PID_DIR/s3.pid"
S3_MODULE_DIR="$BUCKET_LOCAL_DIR/seaweedfs"
S3_VERSION="$(awk '$1 == "require" && $2 == "github.com/seaweedfs/seaweedfs" {print $3}' "$S3_MODULE_DIR/go.mod")"
S3_BIN="$BUCKET_CACHE_DIR/seaweedfs-$S3_VERSION/weed"

# Builds `weed` once per pinned version (about 10 minutes on 2 cores; then reused).
s3_build() {
  [[ -x "$S3_BIN" ]] && return 0
  command -v go >/dev/null || die "s3: the Go toolchain is needed to build SeaweedFS"
  log "s3: building SeaweedFS $S3_VERSION from the Go module proxy (once; cached in $S3_BIN)"
  mkdir -p "$(dirname "$S3_BIN")"
  (cd "$S3_MODULE_DIR" && go build -trimpath -o "$S3_BIN.tmp" github.com/seaweedfs/seaweedfs/weed) ||
    die "s3: building SeaweedFS failed"
  mv "$S3_BIN.tmp" "$S3_BIN"
}

s3_healthy() {
  # Any S3 answer over verified TLS (an anonymous request is refused with 403, which is fine).
  local code
  code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$BUCKET_LOCAL_CA" \
    "https://$BUCKET_HOST:$BUCKET_S3_PORT/" 2>/dev/null)" || return 1
  [[ "$code" == 403 || "$code" == 200 ]]
}

s3_pid() {
  local pid
  pid="$(pid_from_file "$S3_PIDFILE")" && pid_matches "$pid" "weed" || return 1
  echo "$pid"
}

s3_running() { s3_pid >/dev/null && s3_healthy; }

# Server certificate for 127.0.0.1/localhost signed by the local CA; reissued when missing,
# signed by another CA or within 30 days of expiry.
s3_tls() {
  declare -F kafka_tls >/dev/null || source "$BUCKET_LOCAL_DIR/kafka.sh"
  mkdir -p "$KAFKA_LOG_DIR" "$S3_DIR/tls"
  kafka_tls
  local crt="$S3_DIR/tls/server.crt"
  if [[ -s "$crt" ]] && openssl verify -CAfile "$BUCKET_LOCAL_CA" "$crt" >/dev/null 2>&1 &&
     openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null 2>&1; then
    return 0
  fi
  log "s3: issuing the server certificate (local CA)"
  (
    cd "$S3_DIR/tls"
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
      "$BUCKET_HOST" >server.ext
    openssl req -newkey rsa:3072 -sha256 -nodes -keyout server.key -out server.csr \
      -subj "/CN=localhost" 2>/dev/null
    openssl x509 -req -in server.csr -CA "$BUCKET_LOCAL_CA" -CAkey "$KAFKA_TLS_DIR/ca.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile server.ext \
      -out server.crt 2>/dev/null
    chmod 600 server.key
  ) || die "s3: issuing the certificate failed"
}

s3_identities() {
  cat >"$S3_DIR/identities.json" <<EOF
{
  "identities": [
    {"name": "bucket-admin",
     "credentials": [{"accessKey": "$BUCKET_S3_ADMIN_ACCESS_KEY_ID", "secretKey": "$BUCKET_S3_ADMIN_SECRET_ACCESS_KEY"}],
     "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
    {"name": "bucket-sink",
     "credentials": [{"accessKey": "$BUCKET_S3_SINK_ACCESS_KEY_ID", "secretKey": "$BUCKET_S3_SINK_SECRET_ACCESS_KEY"}],
     "actions": ["Read:$BUCKET_S3_BUCKET", "Write:$BUCKET_S3_BUCKET", "List:$BUCKET_S3_BUCKET"]},
    {"name": "bucket-reader",
     "credentials": [{"accessKey": "$BUCKET_S3_READER_ACCESS_KEY_ID", "secretKey": "$BUCKET_S3_READER_SECRET_ACCESS_KEY"}],
     "actions": ["Read:$BUCKET_S3_BUCKET", "List:$BUCKET_S3_BUCKET"]}
  ]
}
EOF
  chmod 600 "$S3_DIR/identities.json"
}

s3_start() {
  ensure_dirs
  if s3_running; then
    log "s3: already running (pid $(s3_pid)), healthy"
    return 0
  fi
  s3_build
  port_open "$BUCKET_S3_PORT" && die "s3: port $BUCKET_S3_PORT is in use by another process"
  mkdir -p "$S3_DIR/data"
  s3_tls
  s3_identities
  log "s3: starting SeaweedFS on https://$BUCKET_HOST:$BUCKET_S3_PORT (bucket $BUCKET_S3_BUCKET)"
  # Ports of the inner servers are pinned under 1xxxx so they do not meet the other services.
  launch_daemon "$S3_PIDFILE" "$S3_LOG" "$S3_DIR" "$S3_BIN" mini \
    -dir="$S3_DIR/data" -ip="$BUCKET_HOST" -ip.bind="$BUCKET_HOST" \
    -master.port="$BUCKET_S3_MASTER_PORT" -volume.port="$BUCKET_S3_VOLUME_PORT" \
    -filer.port="$BUCKET_S3_FILER_PORT" -s3.port="$BUCKET_S3_PORT" \
    -admin.ui=false -admin.port.legacy=0 -webdav=false \
    -master.volumeSizeLimitMB=1024 \
    -bucket="$BUCKET_S3_BUCKET" -s3.config="$S3_DIR/identities.json" \
    -s3.cert.file="$S3_DIR/tls/server.crt" -s3.key.file="$S3_DIR/tls/server.key"
  if ! wait_until "$BUCKET_S3_TIMEOUT" s3 s3_healthy; then
    show_log_tail "$S3_LOG"; die "s3: not healthy"
  fi
  log "s3: healthy (pid $(s3_pid || echo '?'))"
}

s3_stop() { stop_pid "$S3_PIDFILE" weed s3; }

s3_status() {
  if s3_running; then
    echo "s3        UP    https://$BUCKET_HOST:$BUCKET_S3_PORT  bucket $BUCKET_S3_BUCKET (pid $(s3_pid))  log: $S3_LOG"
  else
    echo "s3        DOWN  https://$BUCKET_HOST:$BUCKET_S3_PORT  log: $S3_LOG"; return 1
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    start) s3_start ;;
    stop) s3_stop ;;
    status) s3_status ;;
    build) s3_build ;;
    *) echo "usage: $0 start|stop|status|build" >&2; exit 2 ;;
  esac
fi
