#!/usr/bin/env bash
# Apache Kafka single-node KRaft (broker+controller), jars resolved from Maven Central.
# Usage: kafka.sh prepare|start|stop|status
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

KAFKA_HOME="$BUCKET_CACHE_DIR/kafka-$BUCKET_KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
KAFKA_DIR="$BUCKET_STACK_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONF="$KAFKA_DIR/server.properties"
KAFKA_LOG_DIR="$BUCKET_LOG_DIR/kafka"
KAFKA_LOG="$KAFKA_LOG_DIR/server.log"
KAFKA_STDOUT="$KAFKA_LOG_DIR/stdout.log"
KAFKA_PIDFILE="$BUCKET_PID_DIR/kafka.pid"
KAFKA_PID_MARKER="kafka.Kafka $KAFKA_CONF"
# TLS material and SCRAM credentials of the SASL_SSL listener (generated once, kept with the data).
KAFKA_TLS_DIR="$KAFKA_DIR/tls"
KAFKA_SECRETS_DIR="$KAFKA_DIR/secrets"
# SCRAM-SHA-512 users: the bootstrap admin, the gate, the sink, compliance tooling, a demo product.
: "${BUCKET_KAFKA_SCRAM_USERS:=admin gate sink auditor product-demo}"
# Client certificates (CN = the principal) for the production profile's mTLS listener.
: "${BUCKET_KAFKA_MTLS_USERS:=sink}"

# Download broker + tools jars into the cache (once per version).
kafka_prepare() {
  ensure_dirs
  [[ -f "$KAFKA_LIBS/.complete" ]] && return 0
  mkdir -p "$KAFKA_HOME"
  (
    flock 9
    [[ -f "$KAFKA_LIBS/.complete" ]] && exit 0
    log "kafka: resolving org.apache.kafka:kafka_2.13:$BUCKET_KAFKA_VERSION + kafka-tools from Maven Central"
    rm -rf "$KAFKA_LIBS.tmp"
    run_mvn -f "$BUCKET_LOCAL_DIR/kafka/pom.xml" -Dkafka.version="$BUCKET_KAFKA_VERSION" \
      "$BUCKET_MVN_DEPENDENCY_PLUGIN:copy-dependencies" -DoutputDirectory="$KAFKA_LIBS.tmp" ||
      die "kafka: maven dependency resolution failed"
    ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar >/dev/null || die "kafka: kafka_2.13 jar missing after resolution"
    rm -rf "$KAFKA_LIBS"; mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
    touch "$KAFKA_LIBS/.complete"
    log "kafka: $(ls "$KAFKA_LIBS" | wc -l) jars in $KAFKA_LIBS"
  ) 9>"$KAFKA_HOME.lock"
}

# Run a JVM main class with the Kafka classpath (used for CLI tools).
kafka_java_tool() {
  local main="$1"; shift
  # shellcheck disable=SC2086
  "$JAVA" ${BUCKET_KAFKA_TOOL_OPTS:--Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} \
    -Dlog4j2.configurationFile="$BUCKET_LOCAL_DIR/kafka/log4j2-tools.xml" \
    -cp "$KAFKA_LIBS/*" "$main" "$@"
}

# Local CA + broker certificate (PKCS#12 keystore) for the SASL_SSL listener, created once.
# Clients trust $KAFKA_TLS_DIR/ca.crt (PEM). Idempotent: existing material is kept.
kafka_tls() {
  [[ -s "$KAFKA_TLS_DIR/broker.p12" && -s "$KAFKA_TLS_DIR/ca.crt" && -s "$KAFKA_TLS_DIR/keystore.password" ]] && return 0
  command -v openssl >/dev/null || die "kafka: openssl is needed to create the local CA"
  log "kafka: creating a local CA and broker certificate in $KAFKA_TLS_DIR"
  rm -rf "$KAFKA_TLS_DIR.tmp"; mkdir -p "$KAFKA_TLS_DIR.tmp"; chmod 700 "$KAFKA_TLS_DIR.tmp"
  (
    cd "$KAFKA_TLS_DIR.tmp"
    openssl req -x509 -newkey rsa:3072 -sha256 -days 3650 -nodes -keyout ca.key -out ca.crt \
      -subj "/CN=bhiv-bucket local CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign"
    openssl req -newkey rsa:3072 -sha256 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost"
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' \
      "$BUCKET_HOST" >broker.ext
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
      -extfile broker.ext -out broker.crt
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >keystore.password
    openssl pkcs12 -export -name broker -in broker.crt -inkey broker.key -certfile ca.crt \
      -out broker.p12 -passout "file:keystore.password"
    rm -f broker.csr broker.ext ca.srl
    chmod 600 ./*.key ./*.p12 keystore.password
  ) >>"$KAFKA_STDOUT" 2>&1 || { show_log_tail "$KAFKA_STDOUT"; die "kafka: creating TLS material failed"; }
  rm -rf "$KAFKA_TLS_DIR"; mv "$KAFKA_TLS_DIR.tmp" "$KAFKA_TLS_DIR"
}

# issue_cert DIR NAME CN USAGE: a key and a certificate signed by the local CA, in DIR/NAME.key and
# DIR/NAME.crt (PKCS#8 PEM, mode 600). USAGE is serverAuth (SAN: the stack's host, 127.0.0.1,
# localhost), clientAuth (mTLS: the principal is CN) or both, comma-separated. Kept while valid
# and signed by this CA.
issue_cert() {
  local dir="$1" name="$2" cn="$3" usage="$4"
  mkdir -p "$dir" "$(dirname "$KAFKA_STDOUT")"; chmod 700 "$dir"
  if [[ -s "$dir/$name.crt" && -s "$dir/$name.key" ]] &&
     openssl verify -CAfile "$KAFKA_TLS_DIR/ca.crt" "$dir/$name.crt" >/dev/null 2>&1 &&
     openssl x509 -in "$dir/$name.crt" -noout -checkend 2592000 >/dev/null 2>&1; then
    return 0
  fi
  local ext="$dir/$name.ext"
  if [[ "$usage" == *serverAuth* ]]; then
    printf 'subjectAltName=IP:%s,IP:127.0.0.1,DNS:localhost\n' "$BUCKET_HOST" >"$ext"
  else
    : >"$ext"
  fi
  printf 'extendedKeyUsage=%s\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$usage" >>"$ext"
  (umask 077
   openssl req -newkey rsa:2048 -sha256 -nodes -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=$cn" &&
   openssl x509 -req -in "$dir/$name.csr" -CA "$KAFKA_TLS_DIR/ca.crt" -CAkey "$KAFKA_TLS_DIR/ca.key" \
     -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 -extfile "$ext" -out "$dir/$name.crt"
  ) >>"$KAFKA_STDOUT" 2>&1 || { show_log_tail "$KAFKA_STDOUT"; die "tls: issuing $name ($cn) failed"; }
  rm -f "$dir/$name.csr" "$ext"
}

# The production profile's mTLS client certificates, one per user in $BUCKET_KAFKA_MTLS_USERS:
# $KAFKA_TLS_DIR/clients/<user>.crt and .key (--kafka-ssl-cert / --kafka-ssl-key).
kafka_client_certs() {
  local u
  for u in $BUCKET_KAFKA_MTLS_USERS; do issue_cert "$KAFKA_TLS_DIR/clients" "$u" "$u" clientAuth; done
  # The KRaft controller listener's identity (User:controller, a super user): the broker
  # registers with the controller over mTLS with it, and the controller serves with it.
  issue_cert "$KAFKA_TLS_DIR" controller controller serverAuth,clientAuth
  if [[ ! -s "$KAFKA_TLS_DIR/controller.p12" || "$KAFKA_TLS_DIR/controller.p12" -ot "$KAFKA_TLS_DIR/controller.crt" ]]; then
    (umask 077; openssl pkcs12 -export -name controller -in "$KAFKA_TLS_DIR/controller.crt" \
      -inkey "$KAFKA_TLS_DIR/controller.key" -certfile "$KAFKA_TLS_DIR/ca.crt" \
      -out "$KAFKA_TLS_DIR/controller.p12" -passout "file:$KAFKA_TLS_DIR/keystore.password") ||
      die "kafka: controller keystore failed"
  fi
}

# One random password per SCRAM user, generated once (mode 600); clients use file:<path>.
kafka_passwords() {
  mkdir -p "$KAFKA_SECRETS_DIR"; chmod 700 "$KAFKA_SECRETS_DIR"
  local u f
  for u in $BUCKET_KAFKA_SCRAM_USERS; do
    f="$KAFKA_SECRETS_DIR/$u.password"
    [[ -s "$f" ]] && continue
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$f")
  done
  # Java client settings of the admin (kafka-cli.sh <tool> --command-config <this file>).
  (umask 077; cat >"$KAFKA_SECRETS_DIR/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$KAFKA_SECRETS_DIR/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS_DIR/ca.crt
EOF
  )
}

# Fingerprint of the storage (meta.properties), users and passwords: SCRAM credentials are
# (re)written when it changes.
kafka_scram_fingerprint() {
  local u
  { cat "$KAFKA_DATA/meta.properties" 2>/dev/null
    for u in $BUCKET_KAFKA_SCRAM_USERS; do printf '%s:%s\n' "$u" "$(cat "$KAFKA_SECRETS_DIR/$u.password")"; done
  } | sha256sum | cut -d' ' -f1
}

# Creates the SCRAM-SHA-512 credentials on the running broker; works on storage formatted before
# this listener existed. Goes in as the admin (kafka_admin_args). Skipped when users and passwords are unchanged since the last run.
kafka_scram_users() {
  local marker="$KAFKA_SECRETS_DIR/scram.applied" fp u
  fp="$(kafka_scram_fingerprint)"
  [[ "$(cat "$marker" 2>/dev/null)" == "$fp" ]] && return 0
  for u in $BUCKET_KAFKA_SCRAM_USERS; do
    log "kafka: SCRAM-SHA-512 credentials for User:$u"
    # shellcheck disable=SC2046
    kafka_java_tool kafka.admin.ConfigCommand $(kafka_admin_args) --alter \
      --entity-type users --entity-name "$u" \
      --add-config "SCRAM-SHA-512=[iterations=8192,password=$(cat "$KAFKA_SECRETS_DIR/$u.password")]" \
      >/dev/null || die "kafka: creating SCRAM user $u failed"
  done
  echo "$fp" >"$marker"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOG_DIR"
  kafka_tls
  kafka_passwords
  local listeners
  if [[ "$BUCKET_PROFILE" == production ]]; then
    kafka_client_certs
    listeners="# profile: production (deploy/local/up.sh --profile production). No PLAINTEXT listener and no
# anonymous super user: clients authenticate with SCRAM-SHA-512 over TLS or with a client
# certificate (mTLS, principal = the certificate's CN), and the broker talks to itself as
# User:admin over SASL_SSL. The settings of deploy/k8s/overlays/production (docs/deploying.md).
listeners=SASL_SSL://$BUCKET_HOST:$BUCKET_KAFKA_SASL_PORT,SSL://$BUCKET_HOST:$BUCKET_KAFKA_MTLS_PORT,CONTROLLER://$BUCKET_HOST:$BUCKET_KAFKA_CONTROLLER_PORT
advertised.listeners=SASL_SSL://$BUCKET_HOST:$BUCKET_KAFKA_SASL_PORT,SSL://$BUCKET_HOST:$BUCKET_KAFKA_MTLS_PORT
listener.security.protocol.map=SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
# The controller listener: mTLS with the controller certificate on both sides.
listener.name.controller.ssl.keystore.type=PKCS12
listener.name.controller.ssl.keystore.location=$KAFKA_TLS_DIR/controller.p12
listener.name.controller.ssl.keystore.password=$(cat "$KAFKA_TLS_DIR/keystore.password")
listener.name.controller.ssl.key.password=$(cat "$KAFKA_TLS_DIR/keystore.password")
listener.name.controller.ssl.client.auth=required
listener.name.controller.ssl.truststore.type=PEM
listener.name.controller.ssl.truststore.location=$KAFKA_TLS_DIR/ca.crt
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(cat "$KAFKA_SECRETS_DIR/admin.password")\";
# mTLS: a client certificate signed by the local CA is required; the principal is its CN.
listener.name.ssl.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+)\$/\$1/,DEFAULT
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS_DIR/ca.crt
super.users=User:admin;User:controller"
  else
    listeners="# profile: plain. PLAINTEXT is for the laptop default only: its ANONYMOUS principal is a super
# user so that tests and tools keep working unchanged. The production profile
# (deploy/local/up.sh --profile production) and a production broker have no PLAINTEXT listener
# (docs/security.md).
listeners=PLAINTEXT://$BUCKET_HOST:$BUCKET_KAFKA_PORT,SASL_SSL://$BUCKET_HOST:$BUCKET_KAFKA_SASL_PORT,CONTROLLER://$BUCKET_HOST:$BUCKET_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$BUCKET_HOST:$BUCKET_KAFKA_PORT,SASL_SSL://$BUCKET_HOST:$BUCKET_KAFKA_SASL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.client.auth=none
super.users=User:ANONYMOUS;User:admin"
  fi
  cat >"$KAFKA_CONF" <<EOF
# generated by deploy/local/kafka.sh - do not edit (regenerated on every start)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$BUCKET_HOST:$BUCKET_KAFKA_CONTROLLER_PORT
$listeners
controller.listener.names=CONTROLLER
# SASL_SSL: SCRAM-SHA-512 over TLS, broker certificate from the local CA ($KAFKA_TLS_DIR/ca.crt).
sasl.enabled.mechanisms=SCRAM-SHA-512
ssl.keystore.type=PKCS12
ssl.keystore.location=$KAFKA_TLS_DIR/broker.p12
ssl.keystore.password=$(cat "$KAFKA_TLS_DIR/keystore.password")
ssl.key.password=$(cat "$KAFKA_TLS_DIR/keystore.password")
ssl.enabled.protocols=TLSv1.3,TLSv1.2
# ACLs as code (deploy/acls.toml, bucket acls apply): denied unless allowed; super users bypass.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
log.dirs=$KAFKA_DATA
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
# A producer lost inside a transaction pins the last stable offset of what it wrote until the
# coordinator aborts the transaction: after its transaction.timeout.ms (the gate's: 15 s), at the
# next scan for timed-out transactions. Kafka scans every 10 s by default; every 2 s here, as the
# deployment guide recommends (docs/runbook.md, "A gate lost for good").
transaction.abort.timed.out.transaction.cleanup.interval.ms=2000
# artifacts up to 16 MiB must fit (plus record/batch overhead)
message.max.bytes=20971520
replica.fetch.max.bytes=20971520
socket.request.max.bytes=104857600
log.retention.hours=168
log.segment.bytes=1073741824
num.network.threads=2
num.io.threads=4
EOF
}

kafka_random_cluster_id() {
  # Kafka Uuid: 16 random bytes, url-safe base64 without padding, not starting with '-'.
  local id
  while :; do
    id="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  echo "$id"
}

kafka_format() {
  [[ -f "$KAFKA_DATA/meta.properties" ]] && return 0
  local id_file="$KAFKA_DIR/cluster.id"
  [[ -s "$id_file" ]] || kafka_random_cluster_id >"$id_file"
  log "kafka: formatting storage in $KAFKA_DATA (cluster id $(cat "$id_file")), SCRAM users: $BUCKET_KAFKA_SCRAM_USERS"
  # SCRAM credentials go into the initial metadata (no broker round trip needed later).
  local scram=() u
  for u in $BUCKET_KAFKA_SCRAM_USERS; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$u,iterations=8192,password=$(cat "$KAFKA_SECRETS_DIR/$u.password")]")
  done
  "$JAVA" -Xmx256m -Dkafka.logs.dir="$KAFKA_LOG_DIR" \
    -Dlog4j2.configurationFile="$BUCKET_LOCAL_DIR/kafka/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
    -t "$(cat "$id_file")" -c "$KAFKA_CONF" --ignore-formatted "${scram[@]}" >>"$KAFKA_STDOUT" 2>&1 ||
    { show_log_tail "$KAFKA_STDOUT"; die "kafka: storage format failed"; }
  kafka_scram_fingerprint >"$KAFKA_SECRETS_DIR/scram.applied"
}

kafka_pid() {
  local pid
  pid="$(pid_from_file "$KAFKA_PIDFILE")" && pid_matches "$pid" "$KAFKA_PID_MARKER" || return 1
  echo "$pid"
}

# Health: a real metadata round-trip (TopicCommand --list).
kafka_metadata_ok() {
  kafka_admin_port_open || return 1
  # shellcheck disable=SC2046
  timeout 30 "$JAVA" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$BUCKET_LOCAL_DIR/kafka/log4j2-tools.xml" \
    -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.TopicCommand $(kafka_admin_args) --list >/dev/null 2>&1
}

# The admin's way in: PLAINTEXT (anonymous super user) in the plain profile, SCRAM User:admin
# over SASL_SSL in production (--bootstrap-server and --command-config of the Java tools).
kafka_admin_args() {
  if [[ "$BUCKET_PROFILE" == production ]]; then
    echo "--bootstrap-server $BUCKET_KAFKA_SASL_BOOTSTRAP --command-config $KAFKA_SECRETS_DIR/admin.properties"
  else
    echo "--bootstrap-server $BUCKET_KAFKA_BOOTSTRAP"
  fi
}
kafka_admin_port_open() {
  if [[ "$BUCKET_PROFILE" == production ]]; then port_open "$BUCKET_KAFKA_SASL_PORT"; else port_open "$BUCKET_KAFKA_PORT"; fi
}

# The profile the running broker was configured with (first line of its generated settings).
kafka_running_profile() {
  grep -m1 -o '^# profile: [a-z]*' "$KAFKA_CONF" 2>/dev/null | awk '{print $3}'
}

kafka_healthy() { kafka_pid >/dev/null && kafka_metadata_ok; }

# Start the broker without waiting (for parallel startup); returns 0 if already running.
kafka_launch() {
  ensure_dirs
  if kafka_pid >/dev/null; then return 0; fi
  kafka_prepare
  port_open "$BUCKET_KAFKA_PORT" && die "kafka: port $BUCKET_KAFKA_PORT in use by another process"
  port_open "$BUCKET_KAFKA_CONTROLLER_PORT" && die "kafka: port $BUCKET_KAFKA_CONTROLLER_PORT in use by another process"
  port_open "$BUCKET_KAFKA_SASL_PORT" && die "kafka: port $BUCKET_KAFKA_SASL_PORT in use by another process"
  port_open "$BUCKET_KAFKA_MTLS_PORT" && die "kafka: port $BUCKET_KAFKA_MTLS_PORT in use by another process"
  kafka_write_config
  kafka_format
  log "kafka: starting $BUCKET_KAFKA_VERSION, profile $BUCKET_PROFILE, on $(kafka_listeners_text) (controller :$BUCKET_KAFKA_CONTROLLER_PORT)"
  # shellcheck disable=SC2086
  launch_daemon "$KAFKA_PIDFILE" "$KAFKA_STDOUT" "$KAFKA_DIR" \
    "$JAVA" $BUCKET_KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dkafka.logs.dir="$KAFKA_LOG_DIR" \
    -Dlog4j2.configurationFile="$BUCKET_LOCAL_DIR/kafka/log4j2.xml" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF"
}

kafka_wait() {
  local pid
  pid="$(kafka_pid)" || { show_log_tail "$KAFKA_STDOUT"; show_log_tail "$KAFKA_LOG"; die "kafka: process not running"; }
  BUCKET_WAIT_PID="$pid" wait_until "$BUCKET_KAFKA_TIMEOUT" kafka kafka_metadata_ok ||
    { show_log_tail "$KAFKA_STDOUT" 20; show_log_tail "$KAFKA_LOG"; die "kafka: not healthy"; }
  kafka_scram_users
  log "kafka: healthy (pid $pid); $(kafka_listeners_text), CA $KAFKA_TLS_DIR/ca.crt"
}

kafka_start() {
  if kafka_healthy; then
    log "kafka: already running (pid $(kafka_pid)), healthy"
    return 0
  fi
  kafka_launch
  kafka_wait
}

kafka_stop() { stop_pid "$KAFKA_PIDFILE" "$KAFKA_PID_MARKER" kafka; }

kafka_listeners_text() {
  if [[ "$BUCKET_PROFILE" == production ]]; then
    echo "SASL_SSL $BUCKET_KAFKA_SASL_BOOTSTRAP, mTLS $BUCKET_KAFKA_MTLS_BOOTSTRAP"
  else
    echo "$BUCKET_KAFKA_BOOTSTRAP, SASL_SSL $BUCKET_KAFKA_SASL_BOOTSTRAP"
  fi
}

kafka_status() {
  if kafka_healthy; then
    echo "kafka     UP    $(kafka_listeners_text), profile $(kafka_running_profile) (pid $(kafka_pid))  log: $KAFKA_LOG"
  else
    echo "kafka     DOWN  $(kafka_listeners_text)  log: $KAFKA_LOG"; return 1
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    prepare) kafka_prepare ;;
    start) kafka_start ;;
    stop) kafka_stop ;;
    status) kafka_status ;;
    *) echo "usage: $0 prepare|start|stop|status" >&2; exit 2 ;;
  esac
fi
