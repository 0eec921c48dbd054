"""The conformance vectors (docs/conformance/vectors.json) against this client's own code."""

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import bhiv_bucket_client as bb

REPO = Path(__file__).resolve().parents[3]
DOC = json.loads((REPO / "docs" / "conformance" / "vectors.json").read_text("utf-8"))
KEYS = {k["integration_id"]: k for k in DOC["keys"]}


def content_of(c):
    if c is None:
        return None
    if "hex" in c:
        return bytes.fromhex(c["hex"])
    pattern = bytes.fromhex(c["pattern_hex"])
    n = c["length"]
    data = (pattern * (n // len(pattern) + 1))[:n]
    assert hashlib.sha256(data).hexdigest() == c["sha256"]
    return data


def intent_of(v) -> bb.Intent:
    return bb.Intent(
        intent_id=v["intent_id"],
        product_id=v["product_id"],
        integration_id=v["integration_id"],
        owner_id=v["owner_id"],
        requester_id=v["requester_id"],
        artifact_id=v["artifact_id"],
        artifact_class=v["artifact_class"],
        operation=v["operation"],
        expected_version=v["expected_version"],
        content=content_of(v["content"]),
        content_type=v["content_type"],
        metadata=v["metadata"],
        purpose=v["purpose"],
        client_time=v["client_time"],
    )


def check_bytes(v, prefix, data):
    if f"{prefix}_hex" in v:
        assert data.hex() == v[f"{prefix}_hex"]
    else:
        assert data.hex().startswith(v[f"{prefix}_prefix_hex"])
    assert len(data) == v[f"{prefix}_length"]
    assert hashlib.sha256(data).hexdigest() == v[f"{prefix}_sha256"]


def signers(integration):
    k = KEYS[integration]
    ed = k["ed25519"]
    hm = k["hmac-sha256"]
    return {
        "ed25519": bb.Signer.ed25519_seed(integration, ed["key_id"], base64.b64decode(ed["seed_base64"])),
        "ed25519-pem": bb.Signer.ed25519_pem(integration, ed["key_id"], ed["pkcs8_pem"].encode()),
        "hmac-sha256": bb.Signer.hmac_sha256(integration, hm["key_id"], hm["secret_utf8"].encode()),
    }


def test_the_schema_copy_is_the_repository_schema():
    packaged = (Path(bb.__file__).parent / "artifact_intent.avsc").read_bytes()
    assert packaged == (REPO / "schemas" / "artifact_intent.avsc").read_bytes()


def test_every_operation_has_a_vector():
    assert {v["intent"]["operation"] for v in DOC["vectors"]} == {"CREATE", "UPDATE", "DELETE"}


@pytest.mark.parametrize("v", DOC["vectors"], ids=lambda v: v["name"])
def test_positive_vector(v):
    intent = intent_of(v["intent"])
    body = bb.encode_body(intent)
    check_bytes(v, "avro_body", body)
    value = bb.frame(DOC["schema_id"], body)
    check_bytes(v, "value", value)
    key = intent.product_id.encode("utf-8")
    assert key.hex() == v["key_hex"]
    for n, p in v["partitions"].items():
        assert bb.home_partition(key, int(n)) == p
    s = signers(intent.integration_id)
    assert s["ed25519"].header(value) == v["signatures"]["ed25519"]
    assert s["ed25519-pem"].header(value) == v["signatures"]["ed25519"]
    assert s["hmac-sha256"].header(value) == v["signatures"]["hmac-sha256"]


@pytest.mark.parametrize("v", DOC["negative"], ids=lambda v: v["name"])
def test_negative_vector_is_not_what_this_client_sends(v):
    """A negative vector must differ from what the client would produce for the same intent:
    another signature, another partition, another key, or more than one header."""
    if "value_hex" not in v:
        pytest.skip("large value given by digest only")
    value = bytes.fromhex(v["value_hex"])
    assert value[0] == 0 and int.from_bytes(value[1:5], "big") == DOC["schema_id"]
    headers = v["signature_headers"]
    reasons = v["expected_reasons"]
    if reasons == ["WRONG_PARTITION"]:
        key = bytes.fromhex(v["key_hex"])
        assert bb.home_partition(key, v["partition_count"]) != v["partition"]
    elif reasons == ["SIGNATURE_INVALID"]:
        integration = headers[0].split(":")[1]
        assert signers(integration)["ed25519"].header(value) != headers[0]
    elif reasons == ["SIGNATURE_REPEATED"]:
        assert len(headers) > 1
    elif reasons == ["SIGNATURE_MISSING"]:
        assert headers == []


@pytest.mark.parametrize("p", DOC["partitioner"], ids=lambda p: p["key_hex"] or "empty")
def test_partitioner(p):
    key = p["key_utf8"].encode("utf-8")
    assert key.hex() == p["key_hex"]
    assert bb.murmur2(key) == p["murmur2"]
    for n, want in p["partitions"].items():
        assert bb.home_partition(key, int(n)) == want


@pytest.mark.parametrize("k", DOC["keys"], ids=lambda k: k["integration_id"])
def test_key_forms_agree(k):
    ed = k["ed25519"]
    seed = base64.b64decode(ed["seed_base64"])
    from_der = serialization.load_der_private_key(base64.b64decode(ed["pkcs8_der_base64"]), None)
    from_pem = serialization.load_pem_private_key(ed["pkcs8_pem"].encode(), None)
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    assert from_der.private_bytes(*raw) == seed
    assert from_pem.private_bytes(*raw) == seed
    public = serialization.load_pem_public_key(ed["spki_pem"].encode())
    assert isinstance(public, Ed25519PublicKey)
    pub_raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64encode(pub_raw).decode() == ed["public_key_base64"]
    assert Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == pub_raw


def test_documented_hmac_example():
    """The byte-for-byte example of docs/wire-contract.md."""
    h = bb.Signer.hmac_sha256("gurukul-backend", "hm1", b"demo-secret").header(b"hello")
    assert h == "v1:gurukul-backend:hm1:hmac-sha256:LSAv2JacO6NPoZVtZ0y+jLpCXPhrY8eGQf0ZnTUOCJ0="
