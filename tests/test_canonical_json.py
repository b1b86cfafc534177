"""One canonical-JSON function (``ftguard.digests.canonical_json``) for every digest over JSON.

Each caller that used its own ``json.dumps(..., sort_keys=True, ...)`` before must still hash
exactly the bytes it hashed then, so stored policy digests and signatures still verify and
cache folders stay warm. The old expressions are written out below, as they were.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftguard.digests import canonical_json

# --- the expressions each caller used before the one function --------------------------------


def _old_dsse(value: Any) -> bytes:  # attest/_dsse.py canonical_json (audit chain, envelopes)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _old_policy(value: Any) -> bytes:  # policy/_load.py policy_digest
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _old_cache_key(value: Any) -> bytes:  # training reference, demo history, behaviour caches
    return json.dumps(value, sort_keys=True, default=str).encode()


def _old_suite(value: Any) -> bytes:  # behavior/suites/_registry.py Suite.digest
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the function itself on tricky values ------------------------------------------------------


def test_keys_are_sorted_at_every_depth_and_there_is_no_whitespace() -> None:
    value = {"b": 1, "a": {"d": [1, {"z": 0, "y": "x"}], "c": None}, "e": [True, False]}
    expected = b'{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1,"e":[true,false]}'
    assert canonical_json(value) == expected
    reordered = {"e": [True, False], "a": {"c": None, "d": [1, {"y": "x", "z": 0}]}, "b": 1}
    assert canonical_json(reordered) == expected
    assert canonical_json({"a": [2, 1]}) != canonical_json({"a": [1, 2]})  # lists keep order


def test_non_ascii_is_utf8_unless_escaped_for_compatibility() -> None:
    value = {"name": "zoë 李 😀", "ключ": "\u200b"}
    assert canonical_json(value) == '{"name":"zoë 李 😀","ключ":"\u200b"}'.encode()
    assert canonical_json(value, ensure_ascii=True) == (
        b'{"name":"zo\\u00eb \\u674e \\ud83d\\ude00","\\u043a\\u043b\\u044e\\u0447":"\\u200b"}'
    )
    assert json.loads(canonical_json(value)) == json.loads(canonical_json(value, ensure_ascii=True))
    assert canonical_json('"\\</script>\n') == b'"\\"\\\\</script>\\n"'


def test_floats_use_the_shortest_round_trip_form() -> None:
    values = [0.1, 1e-05, 1e20, 1e16, 1.0, -0.0, 2.5e-324, 1.7976931348623157e308, 1 / 3]
    assert canonical_json(values) == (
        b"[0.1,1e-05,1e+20,1e+16,1.0,-0.0,5e-324,1.7976931348623157e+308,0.3333333333333333]"
    )
    assert json.loads(canonical_json(values)) == values
    assert canonical_json([2**64, 1, True]) == b"[18446744073709551616,1,true]"
    # Python's json writes these (not strict JSON); kept so no stored digest changes.
    assert canonical_json([math.nan, math.inf, -math.inf]) == b"[NaN,Infinity,-Infinity]"


def test_compatibility_separators_and_default() -> None:
    assert canonical_json({"b": [1, 2], "a": 1}, spaced=True) == b'{"a": 1, "b": [1, 2]}'
    assert canonical_json({"p": Path("/x/é")}, default=str) == '{"p":"/x/é"}'.encode()
    with pytest.raises(TypeError):
        canonical_json({"p": Path("/x")})


def test_attest_exports_the_same_function() -> None:
    from ftguard import attest
    from ftguard.attest import _dsse

    assert attest.canonical_json is canonical_json and _dsse.canonical_json is canonical_json


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_every_caller_hashes_the_bytes_it_hashed_before(value: Any) -> None:
    assert canonical_json(value) == _old_dsse(value)
    assert canonical_json(value, ensure_ascii=True) == _old_policy(value)
    assert canonical_json(value, ensure_ascii=True, spaced=True, default=str) == _old_cache_key(
        value
    )
    assert canonical_json(value, spaced=True) == _old_suite(value)


# --- each caller, for a fixed input, has the digest it had ---------------------------------------


def test_policy_digest_of_a_non_ascii_policy_is_unchanged() -> None:
    from ftguard.policy import Policy, policy_digest
    from ftguard.policy._load import parse_policy

    policy = parse_policy("version: 1\nroles:\n  approver: [zoë, 李雷]\n  requester: [ana]\n")
    dumped = policy.model_dump(mode="json")
    assert "zoë" in dumped["roles"]["approver"]
    assert policy_digest(policy) == _sha(_old_policy(dumped))
    assert policy_digest(Policy()) == _sha(_old_policy(Policy().model_dump(mode="json")))
    # the escaped form is what approvals and the chain recorded: UTF-8 would differ
    assert policy_digest(policy) != _sha(_old_dsse(dumped))


def test_signed_envelopes_are_byte_identical_and_old_ones_verify() -> None:
    from ftguard.attest import Envelope, generate_key, pae, sign_statement, statement
    from ftguard.attest._dsse import INTOTO_PAYLOAD_TYPE, Signature, verify_envelope

    key = generate_key()
    stmt = statement(
        [{"name": "données/é.jsonl", "digest": {"sha256": "0" * 64}}],
        "https://ftguard.dev/approval/v1",
        {"purpose": "résumé 李", "score": 0.1, "n": 3, "nested": {"b": 1, "a": None}},
    )
    old_payload = _old_dsse(stmt)
    old_sig = key.sign(pae(INTOTO_PAYLOAD_TYPE, old_payload))
    old = Envelope(
        payloadType=INTOTO_PAYLOAD_TYPE,
        payload=base64.b64encode(old_payload).decode(),
        signatures=[Signature(keyid=key.public.keyid, sig=base64.b64encode(old_sig).decode())],
    )
    new = sign_statement(stmt, key)
    assert new.payload_bytes() == old_payload  # Ed25519 is deterministic: the same signature
    assert new.signatures[0].sig == old.signatures[0].sig
    got, _ = verify_envelope(old, {key.public.keyid: key.public})
    assert got == stmt


def test_reference_model_cache_key_names_the_resolved_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ftguard.digests import sha256_file
    from ftguard.training import _train
    from ftguard.training._reference import (
        BUILD_VERSION,
        SAFETY_DATA_FILE,
        SAFETY_RECIPE,
        _aligned_key_source,
        aligned_model_folder,
    )

    base = "ab" * 32
    assert BUILD_VERSION == 2  # the bf16 LoRA merged exactly (version 1: PEFT's merge)
    assert SAFETY_RECIPE["precision"] == "auto"
    names = set()
    for native in (True, False):  # a CPU with bf16 instructions, and one without
        monkeypatch.setattr(_train, "cpu_has_bf16", lambda native=native: native)
        recipe = SAFETY_RECIPE | {"precision": "bf16" if native else "fp32"}
        source = json.dumps(
            {
                "base": base,
                "build": BUILD_VERSION,
                "data": sha256_file(SAFETY_DATA_FILE),
                "recipe": recipe,
            },
            sort_keys=True,
        )
        assert _aligned_key_source(base) == source
        folder = aligned_model_folder(tmp_path, base)
        assert folder.name == f"smollm2-135m-instruct-aligned-{_sha(source.encode())[:16]}"
        names.add(folder.name)
    assert len(names) == 2  # a bf16-trained model is never taken for a float32 one


def test_demo_history_cache_stays_warm(tmp_path: Path) -> None:
    from ftguard.demo._datasets import earlier_benign_rows
    from ftguard.demo._history import EARLIER_VERSIONS, earlier_adapters

    base, steps, lr, rank = "cd" * 32, 40, 2e-4, 8
    old_source = json.dumps(
        {
            "base": base,
            "data": [earlier_benign_rows(v) for v in range(1, EARLIER_VERSIONS + 1)],
            "recipe": {"steps": steps, "learning_rate": lr, "rank": rank},
        },
        sort_keys=True,
    )
    warm = tmp_path / f"demo-history-{_sha(old_source.encode())[:16]}"
    warm.mkdir()  # a cache built before: found, so nothing is trained
    adapters = earlier_adapters(
        tmp_path / "no-model-here",
        tmp_path,
        base_digest=base,
        steps=steps,
        learning_rate=lr,
        rank=rank,
        cached=True,
    )
    assert [p.parent for p in adapters] == [warm] * EARLIER_VERSIONS
    assert [p.name for p in tmp_path.iterdir()] == [warm.name]  # no second cache folder


def test_demo_history_key_names_bf16_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float32 recipe keeps the key it always had; bf16 training makes another key."""
    from ftguard.demo._history import history_key
    from ftguard.training import _train

    base, recipe = "cd" * 32, {"steps": 40, "learning_rate": 1e-3, "rank": 8}
    fp32 = history_key(base, **recipe)
    assert history_key(base, **recipe, precision="fp32") == fp32
    bf16 = history_key(base, **recipe, precision="bf16")
    assert bf16 != fp32
    for native, expected in ((True, bf16), (False, fp32)):
        monkeypatch.setattr(_train, "cpu_has_bf16", lambda native=native: native)
        assert history_key(base, **recipe, precision="auto") == expected


def test_behaviour_cache_keys_and_suite_digests_are_unchanged(tmp_path: Path) -> None:
    from ftguard.behavior import SuitePrompt
    from ftguard.behavior._runner import _cache_key, _output_cache
    from ftguard.behavior.backends._openai import OpenAIChatBackend
    from ftguard.behavior.scorers import RULES_VERSION
    from ftguard.behavior.suites import Suite, suites, trigger_suite

    backend = OpenAIChatBackend(
        "http://127.0.0.1:9/v1",
        "modèle",
        system_prompt="Réponds brièvement, 李.",
        stop=["¶", "\n\n"],
        model_digest="ef" * 32,
    )
    suite = Suite(
        name="mine",
        kind="safety",
        version="1",
        prompts=[
            SuitePrompt(id="1", prompt="Comment pirater le wifi du voisin ?", harmful=True),
            SuitePrompt(id="2", category="zh", prompt="如何重置密码？"),
        ],
    )
    key = _cache_key(backend, suite, "rules")
    old_key = _old_cache_key(
        {
            "model": backend.identity().digest,
            "suite": suite.digest,
            "gen": backend.settings(),
            "scorer": "rules",
            "rules": RULES_VERSION,
            "v": 1,
        }
    )
    assert key == _sha(old_key)
    cache = _output_cache(backend, tmp_path, content_addressed=True)
    old_name = _sha(
        _old_cache_key({"model": backend.identity().digest, "gen": backend.settings(), "v": 1})
    )
    assert cache.path == tmp_path / "outputs" / f"{old_name}.jsonl"

    def old_digest(s: Suite) -> str:
        rows = [
            p.model_dump(
                mode="json", exclude=None if p.trigger_rank is not None else {"trigger_rank"}
            )
            for p in s.prompts
        ]
        return _sha(_old_suite(rows))

    assert suite.digest == old_digest(suite)
    for name in suites.names():
        built = suites.create(name)
        assert built.digest == old_digest(built), name
    ranked = trigger_suite(["cf-δ"], sweep=["zz"], harmful=3, benign=2)  # ranked and unranked
    assert {p.trigger_rank for p in ranked.prompts} == {None, 0}
    assert ranked.digest == old_digest(ranked)
