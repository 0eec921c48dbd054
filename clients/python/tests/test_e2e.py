"""End to end against the real stack, run by tests/clients.rs (BUCKET_E2E=1): the worked
example's intents are produced, and, when the harness gives a read API, each receipt must say
what the example expects (two accepted, one SIGNATURE_INVALID)."""

import importlib.util
import io
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("BUCKET_E2E") != "1", reason="needs the stack (tests/clients.rs)")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "produce.py"


def test_worked_example_against_the_stack():
    spec = importlib.util.spec_from_file_location("produce_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    lines = example.run(os.environ, io.StringIO())
    assert [l["case"] for l in lines] == ["ed25519", "hmac", "tampered"]
    with open(os.environ["BUCKET_E2E_OUT"], "a", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    if os.environ.get("BUCKET_API_URL"):
        for l in lines:
            assert l["outcome"] == l["expect_outcome"], l
            assert l["reasons"] == l["expect_reasons"], l
            assert l["intent_id"]
        assert lines[0]["version"] == 1
