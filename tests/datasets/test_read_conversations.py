from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftguard.errors import BadInputError, FtguardError, NotFoundError
from ftguard.training import read_conversations  # the trainer's entry: ftguard.datasets

CHAT = [
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
            {"role": "assistant", "content": "6"},
        ],
        "extra": "ignored",
    },
]
ALPACA = [
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_openai_chat_jsonl(tmp_path: Path) -> None:
    convs = read_conversations(_jsonl(tmp_path / "d.jsonl", CHAT))
    assert convs[0] == CHAT[0]["messages"]
    assert [m["role"] for m in convs[1]] == ["system", "user", "assistant", "user", "assistant"]


def test_alpaca_json_and_jsonl(tmp_path: Path) -> None:
    expected = [
        [
            {"role": "user", "content": "Translate to French.\n\ncat"},
            {"role": "assistant", "content": "chat"},
        ],
        [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    ]
    as_json = tmp_path / "a.json"
    as_json.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    assert read_conversations(as_json) == expected
    assert read_conversations(_jsonl(tmp_path / "a.jsonl", ALPACA)) == expected


def test_blank_lines_and_bom_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\ufeff" + json.dumps(CHAT[0]) + "\n\n" + json.dumps(ALPACA[0]) + "\n", encoding="utf-8"
    )
    assert len(read_conversations(path)) == 2


def test_unicode_line_separators_inside_strings(tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "a\u2028b\x85c"},
            {"role": "assistant", "content": "ok"},
        ]
    }
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_conversations(path)[0][0]["content"] == "a\u2028b\x85c"


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ('{"text": "plain pretraining text"}\n', "not a chat record"),
        ('{"messages": []}\n', "non-empty list"),
        ('{"messages": [{"role": "wizard", "content": "x"}]}\n', "role"),
        ('{"messages": [{"role": "user", "content": 3}]}\n', "message 0 is a int, not text"),
        ('{"messages": [{"role": "user", "content": "x"}]}\n{not json\n', "line 2: invalid JSON"),
        ('{"instruction": 1, "output": "x"}\n', "instruction is a int, not text"),
        ("[1, 2]", "expected a JSON object"),
        ("[{", "invalid JSON"),
        ("\n\n", "no records"),
        ('"just a string"\n', "expected a JSON object"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError, match=match):
        read_conversations(path)


def test_empty_alpaca_prompt_is_read_as_the_review_reads_it(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"instruction": "", "input": "", "output": "x"}])
    assert read_conversations(path) == [
        [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]
    ]


def test_unreadable_records_are_refused_and_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    good = json.dumps(CHAT[0])
    path.write_text("\n".join([good, "{bad", good, '{"messages": 5}', "[", "[", good]) + "\n")
    with pytest.raises(
        BadInputError, match=r"4 unreadable records.*line 2: .*line 4: .*line 5: .*\(and 1 more\)"
    ):
        read_conversations(path)


def test_not_utf8_and_missing(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BadInputError, match="UTF-8"):
        read_conversations(path)
    with pytest.raises(NotFoundError):
        read_conversations(tmp_path / "missing.jsonl")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_fuzz_bytes_never_crash(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    try:
        convs = read_conversations(path)
    except FtguardError:
        return
    assert all(isinstance(m["content"], str) for c in convs for m in c)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["messages", "role", "content", "instruction", "input", "output", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(json_values, min_size=1, max_size=4), as_list=st.booleans())
def test_fuzz_json_structures(tmp_path: Path, records: list[object], as_list: bool) -> None:
    path = tmp_path / "fuzz.json"
    if as_list:
        path.write_text(json.dumps(records), encoding="utf-8")
    else:
        path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    try:
        convs = read_conversations(path)
    except FtguardError:
        return
    for conv in convs:
        assert conv and all(m["role"] in {"system", "user", "assistant"} for m in conv)
        assert all(isinstance(m["content"], str) for m in conv)
