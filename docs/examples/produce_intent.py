#!/usr/bin/env python3
"""Worked example: produce one signed ArtifactIntent to the BHIV Bucket gate from Python.

What it shows, in the order a real producer does it:

1. Look up the approved schema under the subject ``bucket.intents-value`` in the registry
   (Confluent-compatible API; Apicurio's ``/apis/ccompat/v7`` works). The example never
   registers a schema (``auto.register.schemas=False``): the id in the frame must be the one
   the project registered with ``bucket schemas apply``. The subject is fixed, so the same id
   is used whatever the topic is called (test topics have random suffixes).
2. Serialise the intent with confluent-kafka's ``AvroSerializer`` (``use.latest.version=True``):
   this yields the Confluent frame ``0x00 | 4-byte big-endian schema id | Avro body``.
3. Sign **exactly those value bytes** and put the result in the ``bucket-signature`` header:
   ``v1:<integration_id>:<key_id>:ed25519|hmac-sha256:<standard base64 signature>``.
4. Produce keyed by ``product_id`` with ``partitioner=murmur2_random`` (librdkafka defaults to
   CRC32; the gate refuses records that are not on the murmur2 home partition).

Keys are read from ``deploy/demo/keys`` (DEMO KEYS, local stack only):
``<integration>.<key_id>.ed25519`` holds a base64 32-byte Ed25519 seed, and
``<integration>.<key_id>.hmac`` a secret whose trimmed UTF-8 bytes are the HMAC key.

Requirements (Python 3.11): ``confluent-kafka[avro,schemaregistry]==2.14.2 fastavro==1.13.1
cryptography==50.0.2``.

Usage::

    python docs/examples/produce_intent.py --product gurukul --alg ed25519
    python docs/examples/produce_intent.py --alg hmac --tamper   # rejected SIGNATURE_INVALID

Prints one JSON line: intent_id, partition, offset, schema_id and the signature header.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SUBJECT = "bucket.intents-value"
REPO = Path(__file__).resolve().parents[2]

# Classes each shipped product may write (deploy/policy.toml); any mutable one works.
DEFAULT_CLASS = {
    "ai_assistant": "document",
    "ai_avatar": "media",
    "gurukul": "transcript",
    "enforcement_engine": "config",
    "workflow": "workflow_state",
}


def signature_header(integration: str, key_id: str, alg: str, keys_dir: Path, value: bytes) -> str:
    """The bucket-signature header over the exact record value bytes."""
    if alg == "ed25519":
        seed = base64.b64decode((keys_dir / f"{integration}.{key_id}.ed25519").read_text().strip())
        sig = Ed25519PrivateKey.from_private_bytes(seed).sign(value)
        alg_name = "ed25519"
    elif alg == "hmac":
        secret = (keys_dir / f"{integration}.{key_id}.hmac").read_text().strip().encode("utf-8")
        sig = hmac.new(secret, value, hashlib.sha256).digest()
        alg_name = "hmac-sha256"
    else:
        raise ValueError(f"unknown alg {alg!r}")
    return f"v1:{integration}:{key_id}:{alg_name}:{base64.b64encode(sig).decode('ascii')}"


def main() -> int:
    env = os.environ.get
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default=env("BUCKET_BROKERS", "127.0.0.1:9092"))
    ap.add_argument(
        "--registry", default=env("BUCKET_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
    )
    ap.add_argument("--topic", default=env("BUCKET_INTENTS_TOPIC", "bucket.intents"))
    ap.add_argument("--keys-dir", type=Path, default=REPO / "deploy" / "demo" / "keys")
    ap.add_argument("--product", default="gurukul")
    ap.add_argument("--integration", help="default: <product>-backend")
    ap.add_argument("--alg", choices=["ed25519", "hmac"], default="ed25519")
    ap.add_argument("--key-id", help="default: ed1 for ed25519, hm1 for hmac")
    ap.add_argument("--artifact-id", default=None, help="default: a fresh id")
    ap.add_argument("--owner", default="python-example")
    ap.add_argument(
        "--tamper",
        action="store_true",
        help="sign the intent, then send different value bytes (the gate must refuse it)",
    )
    args = ap.parse_args()

    integration = args.integration or f"{args.product}-backend"
    key_id = args.key_id or ("ed1" if args.alg == "ed25519" else "hm1")

    # 1. The approved schema and its id, looked up (never registered) under the fixed subject.
    registry = SchemaRegistryClient({"url": args.registry})
    approved = registry.get_latest_version(SUBJECT)
    serializer = AvroSerializer(
        registry,
        approved.schema,
        conf={
            "auto.register.schemas": False,
            "use.latest.version": True,
            # The subject is bucket.intents-value whatever the topic is called.
            "subject.name.strategy": lambda _ctx, _record_name: SUBJECT,
        },
    )

    # 2. The intent, as a dict matching schemas/artifact_intent.avsc.
    intent = {
        "intent_id": str(uuid.uuid4()),
        "product_id": args.product,
        "integration_id": integration,
        "owner_id": args.owner,
        "requester_id": args.owner,
        "artifact_id": args.artifact_id or f"py-{uuid.uuid4().hex[:12]}",
        "artifact_class": DEFAULT_CLASS.get(args.product, "document"),
        "operation": "CREATE",
        "expected_version": None,  # required (= current version) for UPDATE and DELETE
        "content": b"Hello from the Python worked example.\n",
        "content_type": "text/plain",
        "metadata": json.dumps({"lang": "en", "source": "produce_intent.py"}),
        "purpose": "wire-contract worked example",
        "client_time": int(time.time() * 1000),  # must be within the policy's clock skew
    }
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    value = serializer(intent, ctx)

    # 3. Sign the exact value bytes.
    header = signature_header(integration, key_id, args.alg, args.keys_dir, value)
    if args.tamper:
        # Same schema id, valid Avro, but not the bytes that were signed.
        value = serializer(dict(intent, purpose="tampered after signing"), ctx)

    # 4. Produce keyed by product_id on Kafka's murmur2 partition.
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": 20971520,
        }
    )
    delivered = {}

    def on_delivery(err, msg):
        delivered["err"] = err
        delivered["msg"] = msg

    producer.produce(
        args.topic,
        key=args.product.encode("utf-8"),
        value=value,
        headers=[("bucket-signature", header.encode("ascii"))],
        on_delivery=on_delivery,
    )
    if producer.flush(30) != 0 or delivered.get("err") is not None or "msg" not in delivered:
        print(f"delivery failed: {delivered.get('err')}", file=sys.stderr)
        return 1
    msg = delivered["msg"]
    print(
        json.dumps(
            {
                "intent_id": intent["intent_id"],
                "artifact_id": intent["artifact_id"],
                "partition": msg.partition(),
                "offset": msg.offset(),
                "schema_id": int.from_bytes(value[1:5], "big"),
                "signature": header,
                "tampered": args.tamper,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
