"""Fuzzing every entry point that reads outside input: no traceback, whatever the input.

Each test feeds generated or garbled input to ``ftguard.cli.main`` in this process and asserts
a documented exit code, no traceback, and a failure said in one ``ftguard: error:`` line (or
click's usage block). The budget is bounded (``max_examples``) so the suite runs in CI; the
corpus of the issue's cases is kept as explicit ``@example``\\ s and in test_no_traceback.py.
"""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ftguard.attest import generate_key, sign_statement, statement
from ftguard.gate import ATTESTATION_PREDICATE
from ftguard.policy import default_policy_yaml
from tests.cli._cli import assert_clean, cli

FUZZ = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NO_EMB = ("--no-embeddings", "--workers", "1", "--json")
DEEP = b"[" * 50_000 + b"]" * 50_000
HUGE = b"9" * 5000


@st.composite
def garbled(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes flipped, inserted, deleted, or the tail cut off."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\x00",
                        b"\xff",
                        b"[",
                        b"{",
                        b'"',
                        b",",
                        b"\n",
                        b"-",
                        b"1e999",
                        HUGE,
                        b"\xe2\x82",
                    ]
                )
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            data[pos:pos] = draw(st.binary(max_size=16))
    return bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# -- CLI arguments -----------------------------------------------------------------------------

COMMANDS = [
    ["review"],
    ["policy", "check"],
    ["policy", "show"],
    ["policy"],
    ["job", "list"],
    ["job", "show"],
    ["job", "cancel"],
    ["job", "submit"],
    ["job"],
    ["weights", "diff"],
    ["weights", "baseline", "list"],
    ["weights", "baseline", "revoke"],
    ["verify-deployment"],
    ["audit", "verify"],
    ["audit", "export"],
    ["user", "list"],
    ["user", "add"],
    ["gate"],
    ["deploy"],
    ["report"],
    ["approve"],
    ["reject"],
    ["override"],
    ["no-such-command"],
    [],
]
TOKENS = [
    "--json",
    "--format",
    "jsonl",
    "csv",
    "parquet",
    "--as",
    "--purpose",
    "--workers",
    "0",
    "-3",
    "--column-map",
    "a=b",
    "=",
    "--scanners",
    "nope",
    "--html",
    "--state",
    "--trusted-key",
    "--attestation",
    "--help",
    "--",
    "-x",
    "--role",
    "wizard",
    "--justification",
    "",
    "j-1",
    "--provenance",
    "--policy",
    "--deep",
    "--alignment",
    "a,b,c",
    "--base-digest",
    "[/bold]",
    "nonexistent.jsonl",
    ".",
    "/dev/null",
    "\n",
]
argument_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)


@FUZZ
@given(
    command=st.sampled_from(COMMANDS),
    rest=st.lists(st.sampled_from(TOKENS) | argument_text, max_size=6),
)
@example(command=["no-such-command"], rest=[])
@example(command=["review"], rest=["--no-such-option"])
@example(command=["review"], rest=[])
@example(command=["policy", "check"], rest=[])
@example(command=["review"], rest=["x.jsonl", "--workers", "many"])
@example(command=["weights", "diff"], rest=["a"])
@example(command=["verify-deployment"], rest=["m"])
def test_fuzz_cli_arguments(
    isolated: Path, capsys: pytest.CaptureFixture[str], command: list[str], rest: list[str]
) -> None:
    assert_clean(cli(capsys, *command, *rest))


# -- dataset files (review) --------------------------------------------------------------------

GOOD_JSONL = b'{"instruction": "hi", "output": "hello"}\n{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
GOOD_JSON = (
    b'[{"prompt": "p", "completion": "c"}, {"instruction": "i", "input": "", "output": "o"}]'
)
GOOD_CSV = b'instruction,output\nhi,hello\n"a,b","c""d"\n'


def _parquet_seed() -> bytes | None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return None
    buf = io.BytesIO()
    pq.write_table(pa.table({"instruction": ["hi", "q"], "output": ["hello", "a"]}), buf)
    return buf.getvalue()


DATASET_SEEDS = [GOOD_JSONL, GOOD_JSON, GOOD_CSV] + ([p] if (p := _parquet_seed()) else [])
dataset_bytes = (
    garbled(DATASET_SEEDS)
    | st.binary(max_size=300)
    | st.lists(json_values, max_size=4).map(
        lambda rows: "\n".join(json.dumps(r) for r in rows).encode()
    )
    | json_values.map(lambda v: json.dumps(v).encode())
)


@FUZZ
@given(
    content=dataset_bytes,
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt", ""]),
    fmt=st.sampled_from([None, "jsonl", "json", "csv", "parquet", "xml"]),
    column_map=st.sampled_from(
        [None, "instruction=question,output=answer", "output=", "messages=x"]
    ),
)
@example(content=b'{"a": ' + DEEP + b"}\n", suffix=".jsonl", fmt=None, column_map=None)
@example(content=DEEP, suffix=".json", fmt=None, column_map=None)
@example(
    content=b'{"instruction": "x", "output": ' + HUGE + b"}\n",
    suffix=".jsonl",
    fmt=None,
    column_map=None,
)
@example(
    content=b'[{"instruction": "x", "output": ' + HUGE + b"}]",
    suffix=".json",
    fmt="json",
    column_map=None,
)
@example(content=bytes(range(256)), suffix=".jsonl", fmt=None, column_map=None)
@example(content=b"PAR1garbage", suffix=".parquet", fmt=None, column_map=None)
def test_fuzz_review_dataset(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    suffix: str,
    fmt: str | None,
    column_map: str | None,
) -> None:
    path = _write(isolated / f"data{suffix}", content)
    args = ["review", str(path), *NO_EMB]
    if fmt:
        args += ["--format", fmt]
    if column_map:
        args += ["--column-map", column_map]
    assert_clean(cli(capsys, *args))


# -- provenance manifests (review --provenance) ------------------------------------------------

PROVENANCE_SEEDS = [
    b"sources: [web]\nlicences: [cc-by]\ncollection_method: manual\npreparer: dan\n",
    b'{"sources": ["web"], "licences": ["cc-by"], "collection_method": "x", "preparer": "dan"}',
]


@FUZZ
@given(
    content=garbled(PROVENANCE_SEEDS)
    | st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | json_values.map(lambda v: yaml.safe_dump(v).encode()),
    suffix=st.sampled_from([".yaml", ".json", ".yml", ""]),
)
@example(content=DEEP, suffix=".json")
@example(content=b"a: " + DEEP + b"\n", suffix=".yaml")
@example(content=b"sources: " + HUGE, suffix=".yaml")
@example(content=bytes(range(256)), suffix=".json")
@example(content=b"a: 1\na: 2\n", suffix=".yaml")
def test_fuzz_provenance(
    isolated: Path, capsys: pytest.CaptureFixture[str], content: bytes, suffix: str
) -> None:
    data = _write(isolated / "train.jsonl", GOOD_JSONL)
    prov = _write(isolated / f"provenance{suffix}", content)
    assert_clean(cli(capsys, "review", str(data), "--provenance", str(prov), *NO_EMB))


# -- policy files (policy check) ---------------------------------------------------------------

POLICY_SEEDS = [
    default_policy_yaml().encode(),
    b"approval:\n  quorum: 3\n  lifetime_hours: 1.5\nweights:\n  critical_middle_layers: [0.2, 0.7]\n"
    b"behavior:\n  min_prompts: {safety: 5}\nreview:\n  max_high_fraction: 0.1\n",
]
policy_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
policy_dicts = st.fixed_dictionaries(
    {},
    optional={
        "version": policy_values,
        "approval": st.dictionaries(
            st.sampled_from(["quorum", "lifetime_hours", "requester_may_prepare", "x"]),
            policy_values,
        ),
        "weights": st.dictionaries(
            st.sampled_from(["z_limit", "critical_middle_layers", "max_drift_norm", "deep_top_k"]),
            policy_values | st.lists(policy_values, max_size=3),
        ),
        "behavior": st.dictionaries(
            st.sampled_from(["alpha", "min_prompts", "required_suites"]),
            policy_values | st.dictionaries(st.text(max_size=5), policy_values, max_size=2),
        ),
        "roles": st.dictionaries(
            st.sampled_from(["admin", "approver", "wizard"]), st.lists(policy_values, max_size=2)
        ),
    },
)


@FUZZ
@given(
    content=garbled(POLICY_SEEDS)
    | st.binary(max_size=200)
    | policy_dicts.map(lambda d: yaml.safe_dump(d).encode())
)
@example(content=b"a: " + DEEP + b"\n")
@example(content=b"approval:\n  quorum: " + HUGE + b"\n")
@example(content=b"approval:\n  quorum: true\n")
@example(content=b"approval:\n  quorum: 2\n  quorum: 1\n")
@example(content=bytes(range(256)))
def test_fuzz_policy_file(
    isolated: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = _write(isolated / "policy.yaml", content)
    assert_clean(cli(capsys, "policy", "check", str(path)))


# -- attestations and trusted keys (verify-deployment, audit verify) ---------------------------

KEY = generate_key()
ATTESTATION = (
    sign_statement(
        statement(
            [{"name": "model", "digest": {"sha256": "0" * 64}}],
            ATTESTATION_PREDICATE,
            {"decision": {"decision": "pass"}, "job_id": "j-1", "files": []},
        ),
        KEY,
    )
    .model_dump_json()
    .encode()
)
KEY_SEEDS = [KEY.public.b64.encode() + b"\n", KEY.public.pem().encode()]


@FUZZ
@given(
    attestation=garbled([ATTESTATION])
    | st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode()),
    key=st.just(KEY_SEEDS[0]) | garbled(KEY_SEEDS) | st.binary(max_size=64),
)
@example(attestation=bytes(range(256)), key=KEY_SEEDS[0])
@example(attestation=DEEP, key=KEY_SEEDS[0])
@example(attestation=b'{"payload": ' + HUGE + b"}", key=KEY_SEEDS[0])
@example(attestation=ATTESTATION, key=bytes(range(256)))
def test_fuzz_attestation_and_key(
    isolated: Path, capsys: pytest.CaptureFixture[str], attestation: bytes, key: bytes
) -> None:
    model = isolated / "model"
    model.mkdir(exist_ok=True)
    (model / "adapter_config.json").write_text("{}")
    att = _write(isolated / "attestation.json", attestation)
    pub = _write(isolated / "trusted.pub", key)
    r = cli(
        capsys,
        "verify-deployment",
        str(model),
        "--attestation",
        str(att),
        "--trusted-key",
        str(pub),
    )
    assert_clean(r)
    assert r.code != 0  # no garbling makes an attestation of this model
    assert_clean(cli(capsys, "audit", "verify", "--trusted-key", str(pub)))


# -- safetensors headers (weights diff) --------------------------------------------------------


def _safetensors(header: object, data: bytes, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


TENSOR = np.arange(6, dtype=np.float32).reshape(2, 3)
GOOD_HEADER = {
    "model.layers.0.mlp.down_proj.weight": {
        "dtype": "F32",
        "shape": [2, 3],
        "data_offsets": [0, 24],
    },
    "__metadata__": {"format": "pt"},
}
GOOD_ST = _safetensors(GOOD_HEADER, TENSOR.tobytes())
int_like = (
    st.integers(-(2**70), 2**70) | st.booleans() | st.floats() | st.text(max_size=4) | st.none()
)
tensor_entries = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "BOOL", "F8_E4M3", "Q4", "", "f32"])
        | int_like,
        "shape": st.lists(int_like, max_size=4) | int_like,
        "data_offsets": st.lists(int_like, max_size=3) | int_like,
    },
)
headers = st.dictionaries(
    st.sampled_from(["model.layers.0.mlp.down_proj.weight", "lm_head.weight", "__metadata__", ""]),
    tensor_entries | json_values,
    max_size=3,
).map(lambda h: json.dumps(h).encode()) | garbled([json.dumps(GOOD_HEADER).encode()])


@FUZZ
@given(
    header=headers,
    length=st.none() | st.integers(0, 2**64 - 1) | st.sampled_from([0, 7, 8, 2**63]),
    data=st.sampled_from([TENSOR.tobytes(), b"", b"\x00" * 7, TENSOR.tobytes() * 2]),
    raw=st.none() | garbled([GOOD_ST]) | st.binary(max_size=40),
    tuned_first=st.booleans(),
)
@example(header=b"[" * 50_000, length=None, data=b"", raw=None, tuned_first=False)
@example(
    header=b'{"a": {"dtype": "F32", "shape": [' + HUGE + b'], "data_offsets": [0, 4]}}',
    length=None,
    data=b"",
    raw=None,
    tuned_first=True,
)
@example(header=b"{}", length=2**64 - 1, data=b"", raw=None, tuned_first=False)
@example(header=b"\xff\xfe", length=None, data=b"", raw=None, tuned_first=False)
def test_fuzz_safetensors_headers(
    isolated: Path,
    capsys: pytest.CaptureFixture[str],
    header: bytes,
    length: int | None,
    data: bytes,
    raw: bytes | None,
    tuned_first: bool,
) -> None:
    good = _write(isolated / "base.safetensors", GOOD_ST)
    bad = _write(
        isolated / "tuned.safetensors",
        raw if raw is not None else _safetensors(header, data, length),
    )
    pair = (bad, good) if tuned_first else (good, bad)
    assert_clean(cli(capsys, "weights", "diff", str(pair[0]), str(pair[1]), "--json"))


# -- environment variables ---------------------------------------------------------------------

env_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)


@pytest.fixture(scope="module")
def shared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ftguard.cli import main

    home = tmp_path_factory.mktemp("env") / "ws"
    saved = {
        k: os.environ.get(k) for k in ("FTGUARD_HOME", "FTGUARD_DATABASE_URL", "FTGUARD_KEYS_DIR")
    }
    os.environ.pop("FTGUARD_DATABASE_URL", None)
    os.environ["FTGUARD_KEYS_DIR"] = str(home.parent / "keys")
    try:
        assert main(["init", str(home), "--admin", "root", "--json"]) == 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return home


@FUZZ
@given(
    home=st.none() | st.just("WS") | env_text,
    database=st.none()
    | env_text
    | st.sampled_from(
        [
            "sqlite:///",
            "sqlite:////nonexistent/x.db",
            "postgresql+psycopg://u:pw@127.0.0.1:1/db",
            "postgresql+psycopg://u:pw@[::1/db",
            "mysql://h/db",
            "sqlite:///WS/.ftguard/ftguard.db?mode=ro",
        ]
    ),
    keys=st.none() | env_text | st.just("/proc/no/keys"),
    command=st.sampled_from(
        [
            ["job", "list"],
            ["policy", "show"],
            ["audit", "verify"],
            ["user", "list"],
            ["keys", "create", "--user", "root"],
        ]
    ),
)
@example(
    home="WS",
    database="postgresql+psycopg://u:pw@127.0.0.1:1/db",
    keys=None,
    command=["job", "list"],
)
@example(home="WS", database="sqlite:////nonexistent/x.db", keys=None, command=["job", "list"])
@example(home="~no-such-user-ftguard", database=None, keys=None, command=["job", "list"])
@example(
    home="WS", database=None, keys="/proc/no/keys", command=["keys", "create", "--user", "root"]
)
def test_fuzz_environment(
    isolated: Path,
    shared_workspace: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    home: str | None,
    database: str | None,
    keys: str | None,
    command: list[str],
) -> None:
    for name, value in (
        ("FTGUARD_HOME", home),
        ("FTGUARD_DATABASE_URL", database),
        ("FTGUARD_KEYS_DIR", keys),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.replace("WS", str(shared_workspace)))
    r = cli(capsys, *command)
    assert_clean(r)
    if database and "pw@" in database:
        assert ":pw@" not in r.err  # a password in the URL is never printed
