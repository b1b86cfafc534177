from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftguard.datasets import Example, LoadIssue, load_examples
from ftguard.errors import BadInputError

from ..review.fixtures import write_jsonl


def _all(path: Path, **kw: object) -> list[Example | LoadIssue]:
    return list(load_examples(path, issues=True, **kw))  # type: ignore[arg-type]


def test_openai_chat_multi_turn(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": "You are a helpful travel assistant."},
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": [{"type": "text", "text": "Paris?"}]},
                    {"role": "assistant", "content": "Lovely."},
                ]
            },
        ],
    )
    (ex,) = _all(p)
    assert isinstance(ex, Example)
    assert [t.role for t in ex.turns] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.turns[3].content == "Paris?" and ex.line == 1 and ex.index == 0


def test_alpaca_json_array_and_jsonl(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Add", "input": "2 and 3", "output": "5"},
        {"instruction": "Hi", "input": "", "output": "Hello"},
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows, indent=2))
    arr = _all(tmp_path / "a.json")
    lines = _all(write_jsonl(tmp_path / "a.jsonl", rows))
    for exs in (arr, lines):
        assert [e.user_text for e in exs] == ["Add\n\n2 and 3", "Hi"]  # type: ignore[union-attr]
        assert [e.response for e in exs] == ["5", "Hello"]  # type: ignore[union-attr]
    assert arr[1].line > arr[0].line  # type: ignore[union-attr]


def test_sharegpt_prompt_completion_dolly_and_message_lists(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "s.jsonl",
        [{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}],
    )
    assert [t.role for t in _all(p)[0].turns] == ["user", "assistant"]  # type: ignore[union-attr]
    p = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Q", "completion": "A"}])
    assert _all(p)[0].response == "A"  # type: ignore[union-attr]
    p = write_jsonl(
        tmp_path / "d.jsonl",
        [{"instruction": "Q", "context": "C", "response": "A", "category": "x"}],
    )
    assert _all(p)[0].user_text == "Q\n\nC"  # type: ignore[union-attr]
    (tmp_path / "l.json").write_text(
        json.dumps([[{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]])
    )
    assert _all(tmp_path / "l.json")[0].response == "A"  # type: ignore[union-attr]


def test_csv_with_and_without_column_map(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    with p.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        w.writerow(["What is 2+2?", "4"])
        w.writerow(["Multi\nline?", "yes"])
    exs = _all(p)
    assert [e.response for e in exs] == ["4", "yes"]  # type: ignore[union-attr]
    mapped = _all(p, column_map={"instruction": "answer", "output": "question"})
    assert mapped[0].response == "What is 2+2?"  # type: ignore[union-attr]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"prompt": ["a", "b"], "completion": ["c", "d"]}), tmp_path / "d.parquet"
    )
    assert [e.response for e in _all(tmp_path / "d.parquet")] == ["c", "d"]  # type: ignore[union-attr]


def test_bad_records_become_issues_with_line_numbers(tmp_path: Path) -> None:
    p = tmp_path / "mixed.jsonl"
    p.write_bytes(
        b'{"prompt": "ok", "completion": "fine"}\n'
        b'{"prompt": "broken", \n'
        b"\n"
        b'{"prompt": "bad utf8 \xff\xfe", "completion": "x"}\n'
        b'{"messages": 5}\n'
        b'{"prompt": "ok2", "completion": "fine"}\n'
    )
    items = _all(p)
    issues = [i for i in items if isinstance(i, LoadIssue)]
    assert [i.line for i in issues] == [2, 4, 5]
    assert "invalid JSON" in issues[0].reason and "(column 22)" in issues[0].reason
    assert "UTF-8" in issues[1].reason
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert len(list(load_examples(p))) == 2  # issues are skipped unless asked for


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00binary", b'{"name": "x", "version": 1}\n', b"hello world\n"],
)
def test_not_a_dataset_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "thing.jsonl"
    p.write_bytes(content)
    with pytest.raises(BadInputError, match="not a dataset"):
        list(load_examples(p))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such dataset file"):
        list(load_examples(tmp_path / "nope.jsonl"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_fuzz_jsonl_never_crashes(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.jsonl"
    p.write_bytes(b'{"prompt": "a", "completion": "b"}\n' + data)
    items = _all(p)
    assert isinstance(items[0], Example)
    assert all(isinstance(i, Example | LoadIssue) for i in items)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "messages",
                        "role",
                        "content",
                        "instruction",
                        "output",
                        "prompt",
                        "completion",
                        "conversations",
                        "from",
                        "value",
                    ]
                ),
                c,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_fuzz_json_array_records(tmp_path: Path, record: object) -> None:
    p = tmp_path / "fuzz.json"
    p.write_text(json.dumps([{"instruction": "a", "output": "b"}, record]))
    try:
        items = _all(p)
    except BadInputError:
        return
    assert len(items) == 2 and isinstance(items[0], Example)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzz_csv_never_crashes(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.csv"
    p.write_bytes(b"prompt,completion\nhello,world\n" + data)
    items = _all(p)
    assert isinstance(items[0], Example)
    assert all(isinstance(i, Example | LoadIssue) for i in items)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_fuzz_json_array_bytes(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.json"
    p.write_bytes(b'[{"instruction": "a", "output": "b"},' + data)
    items = _all(p)
    assert isinstance(items[0], Example)
    assert all(isinstance(i, Example | LoadIssue) for i in items)
