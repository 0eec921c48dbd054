#!/usr/bin/env bash
# Run a Kafka CLI tool with the cached Kafka jars (no Kafka tarball needed).
# Usage: kafka-cli.sh <alias|fully.qualified.MainClass> [tool args...]
# --bootstrap-server is NOT added automatically; use "$BUCKET_KAFKA_BOOTSTRAP" (127.0.0.1:9092).
# Example: deploy/local/kafka-cli.sh topics --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kafka.sh"

usage() {
  cat >&2 <<USAGE
usage: $0 <tool> [args...]
aliases:
  topics            org.apache.kafka.tools.TopicCommand
  consumer-groups   org.apache.kafka.tools.consumer.group.ConsumerGroupCommand
  console-consumer  org.apache.kafka.tools.consumer.ConsoleConsumer
  console-producer  org.apache.kafka.tools.ConsoleProducer
  get-offsets       org.apache.kafka.tools.GetOffsetShell
  delete-records    org.apache.kafka.tools.DeleteRecordsCommand
  transactions      org.apache.kafka.tools.TransactionsCommand
  metadata-quorum   org.apache.kafka.tools.MetadataQuorumCommand
  log-dirs          org.apache.kafka.tools.LogDirsCommand
  features          org.apache.kafka.tools.FeatureCommand
  acls              org.apache.kafka.tools.AclCommand
  configs           kafka.admin.ConfigCommand
  storage           kafka.tools.StorageTool
or any fully qualified main class on the Kafka $BUCKET_KAFKA_VERSION classpath.
USAGE
  exit 2
}

[[ $# -ge 1 ]] || usage
tool="$1"; shift
case "$tool" in
  topics) main=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
  get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
  delete-records) main=org.apache.kafka.tools.DeleteRecordsCommand ;;
  transactions) main=org.apache.kafka.tools.TransactionsCommand ;;
  metadata-quorum) main=org.apache.kafka.tools.MetadataQuorumCommand ;;
  log-dirs) main=org.apache.kafka.tools.LogDirsCommand ;;
  features) main=org.apache.kafka.tools.FeatureCommand ;;
  acls) main=org.apache.kafka.tools.AclCommand ;;
  configs) main=kafka.admin.ConfigCommand ;;
  storage) main=kafka.tools.StorageTool ;;
  -h|--help|help) usage ;;
  *.*) main="$tool" ;;
  *) echo "unknown tool alias: $tool" >&2; usage ;;
esac

kafka_prepare
: "${BUCKET_KAFKA_TOOL_OPTS:=-Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
kafka_java_tool "$main" "$@"
