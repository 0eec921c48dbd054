#!/usr/bin/env bash
# The local S3 server for artifact content (docs/decisions/0018): Versity Gateway (versitygw, an
# S3 server over a POSIX directory), installed once from the Go module proxy with `go install`
# at a pinned version and cached in $BUCKET_CACHE_DIR (about 2 minutes on 2 cores).
#
# HTTPS only (S3 and admin endpoints), with a server certificate signed by the stack's local CA
# (like PostgreSQL), its internal IAM, and one identity per role with the least each needs, set
# by a bucket policy (deploy/local/s3-policy.json, rendered into $BUCKET_STACK_DIR/s3):
#   bucket-admin    the root account: users, the bucket and its policy (these scripts only)
#   bucket-sink     GetObject, PutObject, ListBucket (the sink; reconcile)
#   bucket-janitor  GetObject, DeleteObject, ListBucket (purge, gc-objects)
#   bucket-reader   GetObject, ListBucket (the read API)
# Usage: s3.sh start|stop|status|install
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

S3_DIR="$BUCKET_STACK_DIR/s3"
S3_LOG="$BUCKET_LOG_DIR/s3.log"
S3_PIDFILE="$BUCKET_PID_DIR/s3.pid"
S3_BIN="$BUCKET_CACHE_DIR/versitygw-$BUCKET_VERSITYGW_VERSION/versitygw"

# Installs the pinned versitygw once (then reused).
s3_install() {
  [[ -x "$S3_BIN" ]] && return 0
  command -v go >/dev/null || die "s3: the Go toolchain is needed to install versitygw"
  log "s3: installing versitygw $BUCKET_VERSITYGW_VERSION from the Go module proxy (once; cached in $S3_BIN)"
  mkdir -p "$(dirname "$S3_BIN")"
  GOBIN="$(dirname "$S3_BIN")" go install -trimpath \
    "github.com/versity/versitygw/cmd/versitygw@$BUCKET_VERSITYGW_VERSION" ||
    die "s3: installing versitygw failed"
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
  pid="$(pid_from_file "$S3_PIDFILE")" && pid_matches "$pid" versitygw || return 1
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

# The gateway's admin CLI, as the root account, trusting the local CA.
s3_admin() {
  SSL_CERT_FILE="$BUCKET_LOCAL_CA" \
    ADMIN_ACCESS_KEY_ID="$BUCKET_S3_ADMIN_ACCESS_KEY_ID" \
    ADMIN_SECRET_ACCESS_KEY="$BUCKET_S3_ADMIN_SECRET_ACCESS_KEY" \
    ADMIN_ENDPOINT_URL="https://$BUCKET_HOST:$BUCKET_S3_ADMIN_PORT" \
    "$S3_BIN" admin "$@"
}

# One signed S3 request as the root account (curl's SigV4): s3_request METHOD PATH?QUERY [FILE].
s3_request() {
  local method="$1" path="$2" body="${3:-/dev/null}"
  curl -s -o /dev/null -w '%{http_code}' --cacert "$BUCKET_LOCAL_CA" -X "$method" \
    --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$BUCKET_S3_ADMIN_ACCESS_KEY_ID:$BUCKET_S3_ADMIN_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: $(sha256sum <"$body" | cut -c1-64)" \
    --data-binary "@$body" "https://$BUCKET_HOST:$BUCKET_S3_PORT/$path"
}

s3_admin_ready() { s3_admin list-users >/dev/null 2>&1; }

# Users, the bucket and its policy; each step is a no-op when already done.
s3_provision() {
  local users role key secret code out
  wait_until "$BUCKET_S3_TIMEOUT" "s3 admin API" s3_admin_ready || die "s3: admin API not answering"
  users="$(s3_admin list-users)"
  for role in sink janitor reader; do
    key="BUCKET_S3_${role^^}_ACCESS_KEY_ID"; secret="BUCKET_S3_${role^^}_SECRET_ACCESS_KEY"
    grep -qw -- "${!key}" <<<"$users" && continue
    out="$(s3_admin create-user --access "${!key}" --secret "${!secret}" --role user 2>&1)" ||
      grep -qi 'exist' <<<"$out" || die "s3: creating user ${!key} failed: $out"
  done
  if ! s3_admin list-buckets | grep -qw -- "$BUCKET_S3_BUCKET"; then
    out="$(s3_admin create-bucket --owner "$BUCKET_S3_ADMIN_ACCESS_KEY_ID" \
      --bucket "$BUCKET_S3_BUCKET" 2>&1)" ||
      grep -q 'BucketAlreadyOwnedByYou' <<<"$out" ||
      die "s3: creating bucket $BUCKET_S3_BUCKET failed: $out"
  fi
  sed -e "s/@BUCKET@/$BUCKET_S3_BUCKET/g" -e "s/@SINK@/$BUCKET_S3_SINK_ACCESS_KEY_ID/g" \
    -e "s/@JANITOR@/$BUCKET_S3_JANITOR_ACCESS_KEY_ID/g" \
    -e "s/@READER@/$BUCKET_S3_READER_ACCESS_KEY_ID/g" \
    "$BUCKET_LOCAL_DIR/s3-policy.json" >"$S3_DIR/policy.json"
  code="$(s3_request PUT "$BUCKET_S3_BUCKET?policy=" "$S3_DIR/policy.json")"
  [[ "$code" == 2* ]] || die "s3: setting the bucket policy failed (HTTP $code)"
}

s3_start() {
  ensure_dirs
  if s3_running; then
    log "s3: already running (pid $(s3_pid)), healthy"
    return 0
  fi
  s3_install
  port_open "$BUCKET_S3_PORT" && die "s3: port $BUCKET_S3_PORT is in use by another process"
  mkdir -p "$S3_DIR/data" "$S3_DIR/iam"
  s3_tls
  log "s3: starting versitygw on https://$BUCKET_HOST:$BUCKET_S3_PORT (bucket $BUCKET_S3_BUCKET)"
  launch_daemon "$S3_PIDFILE" "$S3_LOG" "$S3_DIR" env \
    ROOT_ACCESS_KEY_ID="$BUCKET_S3_ADMIN_ACCESS_KEY_ID" \
    ROOT_SECRET_ACCESS_KEY="$BUCKET_S3_ADMIN_SECRET_ACCESS_KEY" \
    "$S3_BIN" --port "$BUCKET_HOST:$BUCKET_S3_PORT" \
    --cert "$S3_DIR/tls/server.crt" --key "$S3_DIR/tls/server.key" \
    --admin-port "$BUCKET_HOST:$BUCKET_S3_ADMIN_PORT" \
    --admin-cert "$S3_DIR/tls/server.crt" --admin-cert-key "$S3_DIR/tls/server.key" \
    --iam-dir "$S3_DIR/iam" posix "$S3_DIR/data"
  if ! wait_until "$BUCKET_S3_TIMEOUT" s3 s3_healthy; then
    show_log_tail "$S3_LOG"; die "s3: not healthy"
  fi
  s3_provision
  log "s3: healthy (pid $(s3_pid || echo '?')), users and bucket policy in place"
}

s3_stop() { stop_pid "$S3_PIDFILE" versitygw s3; }

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
    install) s3_install ;;
    *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
  esac
fi
