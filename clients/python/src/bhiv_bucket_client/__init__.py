"""Produce signed artifact intents to the BHIV Bucket gate and read their decision receipts.

A thin layer over confluent-kafka (librdkafka), fastavro and cryptography. The contract it
implements is docs/wire-contract.md; docs/conformance/vectors.json pins it byte for byte.

Steps, as the gate expects them:

1. :class:`Intent` -> :func:`encode_body` (Avro binary of ``ArtifactIntent``) ->
   :func:`frame` (``0x00``, 4-byte big-endian schema id, body): the record value, built once.
2. :class:`Signer` signs exactly those bytes: the ``bucket-signature`` header
   ``v1:<integration>:<key_id>:<ed25519|hmac-sha256>:<base64>``.
3. :class:`BucketProducer` produces the value keyed by ``product_id`` on the murmur2 home
   partition (computed here, and ``partitioner=murmur2_random`` for good measure), with
   ``acks=all`` and idempotence on.
4. :class:`Receipts` polls ``GET {api}/v1/products/{product}/decisions/{intent_id}`` with the
   product's bearer token until the gate has decided (404 until then).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from importlib import resources
from typing import Any, Mapping

import fastavro
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "SUBJECT",
    "SIGNATURE_HEADER",
    "Intent",
    "encode_body",
    "frame",
    "murmur2",
    "home_partition",
    "Signer",
    "KafkaSettings",
    "BucketProducer",
    "Sent",
    "Receipt",
    "Receipts",
    "schema_id_from_registry",
]

#: Registry subject of the approved intent schema (TopicNameStrategy of ``bucket.intents``).
SUBJECT = "bucket.intents-value"
#: The one signature header a record carries (more than one is refused SIGNATURE_REPEATED).
SIGNATURE_HEADER = "bucket-signature"

_SCHEMA = fastavro.parse_schema(
    json.loads(resources.files(__package__).joinpath("artifact_intent.avsc").read_text("utf-8"))
)


def now_ms() -> int:
    """The current time in ms since the epoch (what ``client_time`` must be near)."""
    return int(time.time() * 1000)


@dataclasses.dataclass
class Intent:
    """One ``ArtifactIntent`` (schemas/artifact_intent.avsc); defaults as a producer wants them."""

    product_id: str
    integration_id: str
    artifact_id: str
    artifact_class: str
    owner_id: str
    purpose: str
    operation: str = "CREATE"
    content: bytes | None = None
    content_type: str = "application/octet-stream"
    metadata: str = ""
    expected_version: int | None = None
    requester_id: str | None = None
    intent_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    client_time: int = dataclasses.field(default_factory=now_ms)

    def as_record(self) -> dict[str, Any]:
        """The Avro record (a dict in the schema's field names)."""
        return {
            "intent_id": self.intent_id,
            "product_id": self.product_id,
            "integration_id": self.integration_id,
            "owner_id": self.owner_id,
            "requester_id": self.requester_id if self.requester_id is not None else self.owner_id,
            "artifact_id": self.artifact_id,
            "artifact_class": self.artifact_class,
            "operation": self.operation,
            "expected_version": self.expected_version,
            "content": self.content,
            "content_type": self.content_type,
            "metadata": self.metadata,
            "purpose": self.purpose,
            "client_time": self.client_time,
        }


def encode_body(intent: Intent) -> bytes:
    """Avro binary body of the intent with the approved schema (no Confluent header)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _SCHEMA, intent.as_record())
    return out.getvalue()


def frame(schema_id: int, body: bytes) -> bytes:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, then the body."""
    return b"\x00" + struct.pack(">I", schema_id) + body


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (seed 0x9747b28c) as a signed 32-bit int."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = data[4 * n4 :]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h ^= rest[0]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h >= 1 << 31 else h


def home_partition(key: bytes, partition_count: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (what the gate checks)."""
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


class Signer:
    """Signs record values for one integration key: Ed25519 (preferred) or HMAC-SHA256."""

    def __init__(self, integration_id: str, key_id: str, alg: str, sign) -> None:
        self.integration_id = integration_id
        self.key_id = key_id
        self.alg = alg
        self._sign = sign

    @classmethod
    def ed25519_seed(cls, integration_id: str, key_id: str, seed: bytes) -> "Signer":
        """An Ed25519 signer from the 32-byte seed (``bucket keys generate`` writes it base64)."""
        key = Ed25519PrivateKey.from_private_bytes(seed)
        return cls(integration_id, key_id, "ed25519", key.sign)

    @classmethod
    def ed25519_pem(cls, integration_id: str, key_id: str, pem: bytes) -> "Signer":
        """An Ed25519 signer from a PKCS#8 PEM private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return cls(integration_id, key_id, "ed25519", key.sign)

    @classmethod
    def hmac_sha256(cls, integration_id: str, key_id: str, secret: bytes) -> "Signer":
        """An HMAC-SHA256 signer with a shared secret."""
        return cls(
            integration_id,
            key_id,
            "hmac-sha256",
            lambda value: hmac.new(secret, value, hashlib.sha256).digest(),
        )

    @classmethod
    def from_key_file(cls, path: str | os.PathLike) -> "Signer":
        """A signer from a ``<integration>.<key_id>.ed25519|hmac`` file of ``bucket keys``."""
        name = os.path.basename(os.fspath(path))
        stem, ext = name.rsplit(".", 1)
        integration_id, key_id = stem.rsplit(".", 1)
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
        if ext == "ed25519":
            return cls.ed25519_seed(integration_id, key_id, base64.b64decode(text, validate=True))
        if ext == "hmac":
            return cls.hmac_sha256(integration_id, key_id, text.encode("utf-8"))
        raise ValueError(f"{name}: expected a .ed25519 or .hmac key file")

    def header(self, value: bytes) -> str:
        """The ``bucket-signature`` header value over exactly ``value``."""
        sig = base64.b64encode(self._sign(value)).decode("ascii")
        return f"v1:{self.integration_id}:{self.key_id}:{self.alg}:{sig}"


def resolve_secret(value: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """A secret given as ``file:PATH`` (the file's trimmed text), ``env:NAME`` or as is
    (the gate's own settings accept only the two reference forms; docs/security.md)."""
    if value is None:
        return None
    if value.startswith("file:"):
        with open(value[5:], encoding="utf-8") as f:
            return f.read().strip()
    if value.startswith("env:"):
        return env[value[4:]]
    return value


@dataclasses.dataclass
class KafkaSettings:
    """Where and how to reach Kafka; SASL and TLS included. ``from_env`` reads ``BUCKET_*``."""

    brokers: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"  # or SASL_SSL, SASL_PLAINTEXT, SSL
    sasl_mechanism: str | None = None  # SCRAM-SHA-512, SCRAM-SHA-256, PLAIN
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None  # PEM file of the CA that signed the brokers' certificates
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "KafkaSettings":
        """Settings from BUCKET_BROKERS, BUCKET_KAFKA_SECURITY_PROTOCOL, BUCKET_KAFKA_SASL_MECHANISM,
        BUCKET_KAFKA_SASL_USERNAME, BUCKET_KAFKA_SASL_PASSWORD and BUCKET_KAFKA_SSL_CA."""
        return cls(
            brokers=env.get("BUCKET_BROKERS", "127.0.0.1:9092"),
            security_protocol=env.get("BUCKET_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            sasl_mechanism=env.get("BUCKET_KAFKA_SASL_MECHANISM"),
            sasl_username=env.get("BUCKET_KAFKA_SASL_USERNAME"),
            sasl_password=resolve_secret(env.get("BUCKET_KAFKA_SASL_PASSWORD"), env),
            ssl_ca_location=env.get("BUCKET_KAFKA_SSL_CA"),
        )

    def librdkafka(self) -> dict[str, Any]:
        """The librdkafka configuration of a gate-conformant producer."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.brokers,
            "security.protocol": self.security_protocol,
            # The gate refuses records off the murmur2 home partition; librdkafka's default
            # (consistent_random) is CRC32. The partition is also set explicitly on produce.
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "acks": "all",
            "message.max.bytes": 20971520,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password or ""
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        conf.update(self.extra)
        return conf


def schema_id_from_registry(registry_url: str, timeout: float = 10.0) -> int:
    """The id of the approved intent schema, looked up (never registered) under ``SUBJECT``."""
    url = f"{registry_url.rstrip('/')}/subjects/{SUBJECT}/versions/latest"
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (configured URL)
        return int(json.load(r)["id"])


@dataclasses.dataclass(frozen=True)
class Sent:
    """Where a record landed: the broker has it (``acks=all``); the decision comes later."""

    intent_id: str
    product_id: str
    partition: int
    offset: int
    value: bytes
    signature: str


class BucketProducer:
    """Produces intents to ``bucket.intents``: serialised once, signed, on the home partition."""

    def __init__(
        self,
        settings: KafkaSettings,
        schema_id: int,
        topic: str = "bucket.intents",
    ) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.schema_id = schema_id
        self._producer = Producer(settings.librdkafka())
        self._partitions: int | None = None

    def partition_count(self, timeout: float = 10.0) -> int:
        """Partitions of the intents topic (asked once)."""
        if self._partitions is None:
            md = self._producer.list_topics(self.topic, timeout=timeout)
            t = md.topics.get(self.topic)
            if t is None or t.error is not None or not t.partitions:
                raise RuntimeError(f"topic {self.topic}: {t.error if t else 'missing'}")
            self._partitions = len(t.partitions)
        return self._partitions

    def value(self, intent: Intent) -> bytes:
        """The record value of ``intent``: the Confluent frame around its Avro body."""
        return frame(self.schema_id, encode_body(intent))

    def send(self, intent: Intent, signer: Signer, timeout: float = 30.0) -> Sent:
        """Serialises, signs and produces one intent; returns once the broker has it."""
        value = self.value(intent)
        return self.send_value(intent.product_id, intent.intent_id, value, signer.header(value), timeout)

    def send_value(
        self, product_id: str, intent_id: str, value: bytes, signature: str | None, timeout: float = 30.0
    ) -> Sent:
        """Produces already-built value bytes with their header (for tests and demos)."""
        key = product_id.encode("utf-8")
        done: dict[str, Any] = {}

        def on_delivery(err, msg):
            done["err"], done["msg"] = err, msg

        headers = [(SIGNATURE_HEADER, signature.encode("utf-8"))] if signature else []
        self._producer.produce(
            self.topic,
            key=key,
            value=value,
            partition=home_partition(key, self.partition_count()),
            headers=headers,
            on_delivery=on_delivery,
        )
        self._producer.flush(timeout)
        if done.get("err") is not None or "msg" not in done:
            raise RuntimeError(f"delivery failed: {done.get('err', 'timed out')}")
        msg = done["msg"]
        return Sent(intent_id, product_id, msg.partition(), msg.offset(), value, signature or "")


@dataclasses.dataclass(frozen=True)
class Receipt:
    """The gate's answer to one intent, as the read API gives it to the intent's product."""

    outcome: str  # "ACCEPTED" or "REJECTED"
    reasons: list[str]
    version: int | None
    intent_id: str
    product_id: str
    raw: dict[str, Any]

    @property
    def accepted(self) -> bool:
        """True when the intent was accepted."""
        return self.outcome == "ACCEPTED"


class Receipts:
    """Reads decision receipts from the read API with the product's bearer token."""

    def __init__(self, api_url: str, token: str) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token

    def get(self, product_id: str, intent_id: str, timeout: float = 10.0) -> Receipt | None:
        """The receipt, or None while the intent is undecided (404)."""
        url = "{}/v1/products/{}/decisions/{}".format(
            self.api_url,
            urllib.parse.quote(product_id, safe=""),
            urllib.parse.quote(intent_id, safe=""),
        )
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                body = json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise
        return Receipt(
            outcome=body["outcome"],
            reasons=list(body.get("reasons") or []),
            version=body.get("version"),
            intent_id=body["intent_id"],
            product_id=body["product_id"],
            raw=body,
        )

    def wait(self, product_id: str, intent_id: str, timeout: float = 60.0, every: float = 0.2) -> Receipt:
        """Polls until the intent is decided; raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            receipt = self.get(product_id, intent_id)
            if receipt is not None:
                return receipt
            if time.monotonic() > deadline:
                raise TimeoutError(f"no decision for {product_id}/{intent_id} after {timeout}s")
            time.sleep(every)
