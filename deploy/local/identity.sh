#!/usr/bin/env bash
# The environment one role of the product runs with on this local stack, as KEY=VALUE lines:
# Kafka bootstrap and credentials (and Redis for the gate). In the plain profile every role uses
# the PLAINTEXT listener; in the production profile each role is its own principal, as the ACLs
# in deploy/acls.toml expect: admin, gate, auditor and product (User:product-demo) with
# SCRAM-SHA-512 over TLS, the sink with its client certificate (mTLS). Secrets are passed as
# file: references, never inline.
#
#   deploy/local/identity.sh admin|gate|sink|auditor|product
#   env $(deploy/local/identity.sh gate) target/debug/bucket gate ...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

role="${1:-}"
case "$role" in
  admin|gate|sink|auditor) principal="$role" ;;
  product) principal=product-demo ;;
  *) echo "usage: $0 admin|gate|sink|auditor|product" >&2; exit 2 ;;
esac

KAFKA_DIR="$BUCKET_STACK_DIR/kafka"
if [[ "$BUCKET_PROFILE" != production ]]; then
  echo "BUCKET_BROKERS=$BUCKET_KAFKA_BOOTSTRAP"
  echo "BUCKET_KAFKA_SECURITY_PROTOCOL=plaintext"
  [[ "$role" == gate ]] && echo "BUCKET_REDIS_URL=$BUCKET_REDIS_URL"
  exit 0
fi

echo "BUCKET_KAFKA_SSL_CA=$KAFKA_DIR/tls/ca.crt"
if [[ "$role" == sink ]]; then
  echo "BUCKET_BROKERS=$BUCKET_KAFKA_MTLS_BOOTSTRAP"
  echo "BUCKET_KAFKA_SECURITY_PROTOCOL=ssl"
  echo "BUCKET_KAFKA_SSL_CERT=$KAFKA_DIR/tls/clients/$principal.crt"
  echo "BUCKET_KAFKA_SSL_KEY=$KAFKA_DIR/tls/clients/$principal.key"
else
  echo "BUCKET_BROKERS=$BUCKET_KAFKA_SASL_BOOTSTRAP"
  echo "BUCKET_KAFKA_SECURITY_PROTOCOL=sasl_ssl"
  echo "BUCKET_KAFKA_SASL_USERNAME=$principal"
  echo "BUCKET_KAFKA_SASL_PASSWORD=file:$KAFKA_DIR/secrets/$principal.password"
fi
if [[ "$role" == gate ]]; then
  echo "BUCKET_REDIS_URL=$BUCKET_REDIS_URL"
  echo "BUCKET_REDIS_PASSWORD=file:$BUCKET_REDIS_SECRETS_DIR/gate.password"
  echo "BUCKET_REDIS_CA_FILE=$BUCKET_LOCAL_CA"
fi
