#!/usr/bin/env python3
"""Worked example: one Ed25519-signed and one HMAC-signed intent (accepted) and one signed
before a byte changed (rejected SIGNATURE_INVALID), then each decision read back through the
read API with the product's own token.

Configuration, all from the environment (SASL/TLS included):

  BUCKET_BROKERS            127.0.0.1:9092
  BUCKET_KAFKA_SECURITY_PROTOCOL  PLAINTEXT | SASL_SSL | SASL_PLAINTEXT | SSL
  BUCKET_KAFKA_SASL_MECHANISM     SCRAM-SHA-512 (with BUCKET_KAFKA_SASL_USERNAME / BUCKET_KAFKA_SASL_PASSWORD)
  BUCKET_KAFKA_SSL_CA             CA file that signed the brokers' certificates
  BUCKET_REGISTRY_URL       http://127.0.0.1:8081/apis/ccompat/v7
  BUCKET_INTENTS_TOPIC      bucket.intents
  BUCKET_PRODUCT            ai_assistant (its integration is <product>-backend)
  BUCKET_KEYS_DIR           deploy/demo/keys (<integration>.ed1.ed25519 and .hm1.hmac)
  BUCKET_API_URL            http://127.0.0.1:8090 (unset: produce only, print where each landed)
  BUCKET_API_TOKEN          the product's read-API token

Prints one JSON line per intent: case, intent_id, partition, offset, expected and received
outcome and reasons.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

import bhiv_bucket_client as bb

REPO = Path(__file__).resolve().parents[3]


def run(env=os.environ, out=sys.stdout) -> list[dict]:
    """Produces the three intents, reads their receipts if an API is configured."""
    product = env.get("BUCKET_PRODUCT", "ai_assistant")
    integration = f"{product}-backend"
    keys = Path(env.get("BUCKET_KEYS_DIR", REPO / "deploy" / "demo" / "keys"))
    ed = bb.Signer.from_key_file(keys / f"{integration}.ed1.ed25519")
    hm = bb.Signer.from_key_file(keys / f"{integration}.hm1.hmac")

    schema_id = bb.schema_id_from_registry(
        env.get("BUCKET_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7")
    )
    producer = bb.BucketProducer(
        bb.KafkaSettings.from_env(env),
        schema_id,
        topic=env.get("BUCKET_INTENTS_TOPIC", "bucket.intents"),
    )

    def intent(name: str) -> bb.Intent:
        return bb.Intent(
            product_id=product,
            integration_id=integration,
            artifact_id=f"py-{name}-{os.urandom(4).hex()}",
            artifact_class="document",
            owner_id="python-example",
            purpose="client library worked example",
            content=f"Hello from the Python client ({name}).".encode(),
            content_type="text/plain",
            metadata=json.dumps({"lang": "en", "client": "python"}),
        )

    sent = []
    for case, signer in (("ed25519", ed), ("hmac", hm)):
        sent.append((case, producer.send(intent(case), signer), "ACCEPTED", []))
    # Signed, then re-serialised with another purpose: not the signed bytes, refused.
    bad = intent("tampered")
    header = ed.header(producer.value(bad))
    tampered = producer.value(dataclasses.replace(bad, purpose="changed after signing"))
    sent.append(
        ("tampered", producer.send_value(product, bad.intent_id, tampered, header),
         "REJECTED", ["SIGNATURE_INVALID"])
    )

    api = env.get("BUCKET_API_URL")
    receipts = bb.Receipts(api, env["BUCKET_API_TOKEN"]) if api else None
    lines = []
    for case, s, outcome, reasons in sent:
        line = {
            "client": "python",
            "case": case,
            "intent_id": s.intent_id,
            "product_id": s.product_id,
            "partition": s.partition,
            "offset": s.offset,
            "expect_outcome": outcome,
            "expect_reasons": reasons,
        }
        if receipts:
            r = receipts.wait(product, s.intent_id, timeout=90)
            line.update(outcome=r.outcome, reasons=r.reasons, version=r.version)
        print(json.dumps(line), file=out, flush=True)
        lines.append(line)
    return lines


if __name__ == "__main__":
    for line in run():
        if "outcome" in line and (line["outcome"], line["reasons"]) != (
            line["expect_outcome"], line["expect_reasons"]
        ):
            sys.exit(f"{line['case']}: got {line['outcome']} {line['reasons']}")
