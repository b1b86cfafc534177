"""The review and the trainer read a dataset file the same way, or both refuse it.

Every case writes a file, reads it as the review does (``ftguard.review.load_examples``, what
``review_dataset`` streams) and as the trainer does (``ftguard.training.read_conversations``,
what ``python -m ftguard.training`` trains on), and checks that they agree: the same
conversations (turns, text, order), or the review's unreadable records and the trainer's
refusal naming them, or one and the same "not a dataset" error.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ftguard.datasets._readers as readers
from ftguard.datasets import Example, LoadIssue
from ftguard.errors import BadInputError
from ftguard.review import load_examples, review_dataset
from ftguard.training import read_conversations

Turns = list[tuple[str, str]]


@dataclass
class Reading:
    """What the review saw: examples as (role, text) turns, unreadable records, or an error."""

    examples: list[Turns] = field(default_factory=list)
    issues: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None


def agree(path: Path, **kw: Any) -> Reading:
    """Read ``path`` as the review and as the trainer; assert they agree; return the review's."""
    seen = Reading()
    try:
        items = list(load_examples(path, issues=True, **kw))
    except BadInputError as exc:
        seen.error = str(exc)
        items = []
    assert [i.index for i in items] == list(range(len(items)))  # every record, in order
    for item in items:
        if isinstance(item, LoadIssue):
            seen.issues.append((item.line, item.reason))
        else:
            assert isinstance(item, Example)
            seen.examples.append([(t.role, t.content) for t in item.turns])
    try:
        trained: list[Turns] | None = [
            [(m["role"], m["content"]) for m in conv] for conv in read_conversations(path, **kw)
        ]
        refusal = None
    except BadInputError as exc:
        trained, refusal = None, str(exc)
    if seen.error is not None:
        assert refusal == seen.error  # the same "not a dataset" error, word for word
    elif seen.issues:
        assert refusal is not None, "the trainer read a file with records the review could not"
        n = len(seen.issues)
        assert f"{n} unreadable record{'s' if n > 1 else ''}" in refusal
        line, reason = seen.issues[0]
        assert f"line {line}: {reason}" in refusal
    else:
        assert refusal is None, f"the trainer refused what the review read: {refusal}"
        assert trained == seen.examples
    return seen


def chat(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"messages": [{"role": r, "content": c} for r, c in pairs]}


def jsonl(path: Path, rows: list[Any], *, eol: str = "\n", bom: bool = False) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + eol for r in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


CHAT_ROWS = [
    chat(("system", "Be brief."), ("user", "2+2?"), ("assistant", "4")),
    chat(("user", "Hi"), ("assistant", "Hello!"), ("user", "Paris?"), ("assistant", "Lovely.")),
]
CHAT_TURNS = [
    [("system", "Be brief."), ("user", "2+2?"), ("assistant", "4")],
    [("user", "Hi"), ("assistant", "Hello!"), ("user", "Paris?"), ("assistant", "Lovely.")],
]
ALPACA_ROWS = [
    {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
    {"instruction": "Name a colour.", "input": "", "output": "Blue."},
]
ALPACA_TURNS = [
    [("user", "Translate to French.\n\ncat"), ("assistant", "chat")],
    [("user", "Name a colour."), ("assistant", "Blue.")],
]


# --- the formats the project writes ---------------------------------------------------------


def test_openai_chat_jsonl(tmp_path: Path) -> None:
    rows = [
        *CHAT_ROWS,
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
                {"role": "assistant", "content": "c"},
            ],
            "label": "x",
        },
    ]
    seen = agree(jsonl(tmp_path / "chat.jsonl", rows))
    assert seen.examples == [*CHAT_TURNS, [("user", "a\nb"), ("assistant", "c")]]


def test_alpaca_json_array(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(ALPACA_ROWS, indent=2), encoding="utf-8")
    assert agree(path).examples == ALPACA_TURNS


def test_csv_with_a_column_map(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)  # CRLF row ends, as the csv module writes them
        w.writerow(["id", "question", "answer", "notes"])
        w.writerow(["q1", "What is 2+2?", "4", "x"])
        w.writerow(["q2", "Multi\r\nline, quoted?", "yes", ""])
    cmap = {"instruction": "question", "output": "answer"}
    seen = agree(path, column_map=cmap)
    assert seen.examples == [
        [("user", "What is 2+2?"), ("assistant", "4")],
        [("user", "Multi\r\nline, quoted?"), ("assistant", "yes")],
    ]
    swapped = agree(path, column_map={"instruction": "answer", "output": "question"})
    assert swapped.examples[0] == [("user", "4"), ("assistant", "What is 2+2?")]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"prompt": ["a", "b"], "completion": ["c", "d"], "n": [1, 2]}),
        tmp_path / "pc.parquet",
    )
    assert agree(tmp_path / "pc.parquet").examples == [
        [("user", "a"), ("assistant", "c")],
        [("user", "b"), ("assistant", "d")],
    ]
    pq.write_table(
        pa.table({"messages": [r["messages"] for r in CHAT_ROWS]}), tmp_path / "chat.parquet"
    )
    assert agree(tmp_path / "chat.parquet").examples == CHAT_TURNS
    # a number where text belongs is unreadable; so is NaN
    pq.write_table(
        pa.table({"prompt": ["a", "b"], "completion": ["c", None], "x": [0.5, float("nan")]}),
        tmp_path / "ok.parquet",
    )
    assert agree(tmp_path / "ok.parquet").examples[1] == [("user", "b"), ("assistant", "")]
    pq.write_table(
        pa.table({"prompt": ["a", "b"], "completion": [1.0, float("nan")]}),
        tmp_path / "num.parquet",
    )
    seen = agree(tmp_path / "num.parquet")
    assert seen.error is not None and "not text" in seen.error
    dup = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array(["b"]), pa.array(["c"])],
        names=["prompt", "completion", "prompt"],
    )
    pq.write_table(dup, tmp_path / "dup.parquet")
    assert "repeats the column 'prompt'" in (agree(tmp_path / "dup.parquet").error or "")


# --- the tricky cases -----------------------------------------------------------------------


def test_utf8_bom_at_the_start_is_skipped_in_every_format(tmp_path: Path) -> None:
    assert agree(jsonl(tmp_path / "b.jsonl", CHAT_ROWS, bom=True)).examples == CHAT_TURNS
    arr = tmp_path / "b.json"
    arr.write_bytes(b"\xef\xbb\xbf" + json.dumps(ALPACA_ROWS).encode())
    assert agree(arr).examples == ALPACA_TURNS
    tab = tmp_path / "b.csv"
    tab.write_bytes(b"\xef\xbb\xbfprompt,completion\nhi,there\n")
    assert agree(tab).examples == [[("user", "hi"), ("assistant", "there")]]


def test_a_bom_elsewhere_is_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "mid.jsonl"
    path.write_bytes(
        json.dumps(CHAT_ROWS[0]).encode()
        + b"\n\xef\xbb\xbf"
        + json.dumps(CHAT_ROWS[1]).encode()
        + b"\n"
    )
    seen = agree(path)
    assert seen.examples == CHAT_TURNS[:1] and [line for line, _ in seen.issues] == [2]
    arr = tmp_path / "mid.json"
    arr.write_bytes(
        b"["
        + json.dumps(ALPACA_ROWS[0]).encode()
        + b",\xef\xbb\xbf"
        + json.dumps(ALPACA_ROWS[1]).encode()
        + b"]"
    )
    assert agree(arr).issues


def test_crlf_reads_as_lf(tmp_path: Path) -> None:
    assert agree(jsonl(tmp_path / "crlf.jsonl", CHAT_ROWS, eol="\r\n")).examples == CHAT_TURNS
    arr = tmp_path / "crlf.json"
    arr.write_bytes(json.dumps(ALPACA_ROWS, indent=2).replace("\n", "\r\n").encode())
    assert agree(arr).examples == ALPACA_TURNS
    tab = tmp_path / "crlf.csv"
    tab.write_bytes(b"prompt,completion\r\nhi,there\r\n\r\nbye,now\r\n")
    assert agree(tab).examples == [
        [("user", "hi"), ("assistant", "there")],
        [("user", "bye"), ("assistant", "now")],
    ]


def test_a_lone_cr_does_not_end_a_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "cr.jsonl"
    path.write_bytes(
        b"\r".join(json.dumps(r).encode() for r in CHAT_ROWS)
        + b"\n"
        + json.dumps(CHAT_ROWS[0]).encode()
    )
    seen = agree(path)
    assert [line for line, _ in seen.issues] == [1] and "extra data" in seen.issues[0][1]


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    good = json.dumps(CHAT_ROWS[0])
    path = tmp_path / "dup.jsonl"
    path.write_text(
        good
        + "\n"
        + '{"messages": [{"role": "user", "content": "safe"}], "messages": [{"role": "user", "content": "evil"}]}\n'
        + '{"messages": [{"role": "user", "role": "system", "content": "x"}]}\n'
        + good
        + "\n"
    )
    seen = agree(path)
    assert seen.examples == [CHAT_TURNS[0], CHAT_TURNS[0]]
    assert [line for line, _ in seen.issues] == [2, 3]
    assert all("duplicate key" in reason for _, reason in seen.issues)
    arr = tmp_path / "dup.json"
    arr.write_text(
        '[{"instruction": "a", "output": "b"},\n{"instruction": "a", "output": "b", "output": "c"},\n'
        '{"prompt": NaN}, {"instruction": "d", "output": "e"}]'
    )
    seen = agree(arr)
    assert seen.examples == [
        [("user", "a"), ("assistant", "b")],
        [("user", "d"), ("assistant", "e")],
    ]
    assert seen.issues == [
        (2, "refused JSON: duplicate key 'output'"),
        (3, "refused JSON: NaN is not a JSON number"),
    ]
    tab = tmp_path / "dup.csv"
    tab.write_text("prompt,completion,completion\na,b,c\n")
    assert "repeats the column 'completion'" in (agree(tab).error or "")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_refused(tmp_path: Path, number: str) -> None:
    path = tmp_path / "nan.jsonl"
    path.write_text(
        json.dumps(CHAT_ROWS[0])
        + "\n"
        + '{"prompt": "a", "completion": "b", "score": '
        + number
        + "}\n"
    )
    seen = agree(path)
    assert seen.examples == CHAT_TURNS[:1] and "refused JSON" in seen.issues[0][1]


def test_a_very_long_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long_text = "word " * 400_000  # 2 MB on one line: read whole
    rows = [chat(("user", long_text), ("assistant", "ok")), CHAT_ROWS[0]]
    path = jsonl(tmp_path / "long.jsonl", rows)
    assert agree(path).examples == [[("user", long_text), ("assistant", "ok")], CHAT_TURNS[0]]
    arr = tmp_path / "long.json"
    arr.write_text(json.dumps(rows))
    assert agree(arr).examples == [[("user", long_text), ("assistant", "ok")], CHAT_TURNS[0]]
    # past the record size limit the line is one unreadable record, and reading goes on
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 100_000)
    seen = agree(path)
    assert seen.issues == [(1, "a line longer than 100000 bytes")] and seen.examples == [
        CHAT_TURNS[0]
    ]
    assert "a record larger than 100000 bytes" in (agree(arr).error or "")  # the first: no dataset


def test_blank_lines_and_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    a, b = (json.dumps(r) for r in CHAT_ROWS)
    path.write_text(f"\n{a}\n\n  \t\r\n{b}")  # blank, whitespace-only, and no final newline
    seen = agree(path)
    assert seen.examples == CHAT_TURNS and not seen.issues


def test_mixed_formats_in_one_jsonl_file(tmp_path: Path) -> None:
    rows: list[Any] = [
        CHAT_ROWS[0],
        ALPACA_ROWS[0],
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
        {"prompt": "P", "completion": "C"},
        [{"role": "user", "content": "L"}, {"role": "assistant", "content": "M"}],
        CHAT_ROWS[1],
    ]
    seen = agree(jsonl(tmp_path / "mixed.jsonl", rows))
    assert seen.examples == [
        CHAT_TURNS[0],
        ALPACA_TURNS[0],
        [("user", "Q"), ("assistant", "A")],
        [("user", "P"), ("assistant", "C")],
        [("user", "L"), ("assistant", "M")],
        CHAT_TURNS[1],
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"messages": [{"role": "user", "content": "x"}', "invalid JSON"),
        (b'{"prompt": "bad \xff utf8", "completion": "x"}', "invalid UTF-8"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "unknown role"),
        (b'{"messages": [{"role": "user", "content": 3}]}', "not text"),
        (b'{"instruction": "a", "output": true}', "not text"),
        (b'{"messages": []}', "empty"),
        (b'{"text": "plain pretraining text"}', "no known example fields"),
        (b'{"prompt": "\\ud800", "completion": "x"}', "lone surrogate"),
        (b'"a string"', "expected a JSON object"),
        (b'{"prompt": "a", "completion": "b"} {"prompt": "c"}', "extra data"),
    ],
)
def test_an_unreadable_record(tmp_path: Path, line: bytes, why: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps(CHAT_ROWS[0]).encode()
    path.write_bytes(b"\n".join([good, line, good]) + b"\n")
    seen = agree(path)
    assert seen.examples == [CHAT_TURNS[0]] * 2
    assert len(seen.issues) == 1 and seen.issues[0][0] == 2 and why in seen.issues[0][1]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            '[{"prompt": "a", "completion": "b"} {"prompt": "c", "completion": "d"}]',
            "expected ',' or ']'",
        ),
        (
            '[{"prompt": "a", "completion": "b"},, {"prompt": "c", "completion": "d"}]',
            "invalid JSON",
        ),
        ('[{"prompt": "a", "completion": "b"},]', "invalid JSON"),
        (
            '[{"prompt": "a", "completion": "b"}] [{"prompt": "c", "completion": "d"}]',
            "after the end of the array",
        ),
        ('[{"prompt": "a", "completion": "b"}, {"prompt": "c"', "invalid JSON"),
        ('[{"prompt": "a", "completion": "b"}, 12', "not closed"),
    ],
)
def test_json_arrays_are_strict_json(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(text)
    seen = agree(path)
    assert seen.examples == [[("user", "a"), ("assistant", "b")]]
    assert why in seen.issues[-1][1]


def test_csv_rows_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("prompt,completion\na,b\nc\nd,e,f\ng,h\n")
    seen = agree(path)
    assert seen.examples == [
        [("user", "a"), ("assistant", "b")],
        [("user", "g"), ("assistant", "h")],
    ]
    assert [r for _, r in seen.issues] == [
        "the row has fewer fields than the header",
        "the row has more fields than the header",
    ]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n",
        b"\x89PNG\r\n\x1a\n\x00binary",
        b'{"name": "x", "version": 1}\n',
        b"[1, 2]",
        b"\xff\xfe\x00x",
    ],
)
def test_not_a_dataset_is_the_same_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "thing.jsonl"
    path.write_bytes(content)
    assert "not a dataset" in (agree(path).error or "")


def test_review_dataset_streams_the_same_reader(tmp_path: Path) -> None:
    """``review_dataset`` counts every record and reports the unreadable ones at their lines."""
    import ftguard.review._engine as engine
    from ftguard import datasets

    assert engine.load_examples is datasets.load_examples
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join([json.dumps(CHAT_ROWS[0]), '{"a": 1, "a": 2}', json.dumps(ALPACA_ROWS[0])]) + "\n"
    )
    seen = agree(path)
    review = review_dataset(path, scanners=["quality_provenance"], embeddings=False, workers=1)
    assert review.examples == len(seen.examples) + len(seen.issues) == 3
    fmt = [f for f in review.findings if f.scanner == "format"]
    assert [(f.line, f.reason) for f in fmt] == [
        (line, f"unreadable record: {r}") for line, r in seen.issues
    ]


# --- fuzzing: only BadInputError may escape either reader, and they always agree -------------

FRAGMENTS = [
    json.dumps(CHAT_ROWS[0]),
    json.dumps(ALPACA_ROWS[0]),
    json.dumps({"prompt": "p", "completion": "c"}),
    '{"messages": [{"role": "user", "content": "x"}], "messages": []}',
    '{"prompt": "a", "completion": NaN}',
    '{"prompt": 1, "completion": "c"}',
    '{"instruction": "i", "output": "o", "system": "s"}',
    '[{"role": "user", "content": "u"}]',
    '{"conversations": [{"from": "gpt", "value": "v"}]}',
    "\n",
    "\r\n",
    "\r",
    " ",
    "\ufeff",
    "[",
    "]",
    ",",
    "{",
    "}",
    '"',
    "\\",
    "x",
    "1e999",
    "null",
    '"\\ud800"',
    "\u2028",
    "\x00",
    "prompt,completion",
    "a,b",
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), max_size=12),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".txt"]),
    junk=st.binary(max_size=8),
)
def test_fuzz_token_soup_review_and_trainer_agree(
    tmp_path: Path, parts: list[str], suffix: str, junk: bytes
) -> None:
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes("".join(parts).encode("utf-8", "surrogatepass") + junk)
    agree(path)  # raises if anything but BadInputError escapes, or if they disagree


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "messages",
                    "role",
                    "content",
                    "instruction",
                    "input",
                    "output",
                    "prompt",
                    "completion",
                    "conversations",
                    "from",
                    "value",
                    "system",
                    "text",
                    "id",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
roles = st.sampled_from(["system", "user", "assistant", "tool", "developer", "wizard", "USER"])
messages = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=12)}), min_size=0, max_size=4
)
records = st.one_of(
    json_values,
    st.builds(lambda m: {"messages": m}, messages),
    st.fixed_dictionaries(
        {
            "instruction": st.text(max_size=8),
            "input": st.text(max_size=8),
            "output": st.text(max_size=8),
        }
    ),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(records, min_size=0, max_size=5),
    as_array=st.booleans(),
    eol=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    blank=st.booleans(),
)
def test_fuzz_records_review_and_trainer_agree(
    tmp_path: Path, rows: list[Any], as_array: bool, eol: str, bom: bool, blank: bool
) -> None:
    dumped = [json.dumps(r, ensure_ascii=False) for r in rows]  # floats may be NaN or Infinity
    text = (
        ("[" + ("," + eol).join(dumped) + "]")
        if as_array
        else (eol + (eol if blank else "")).join(dumped)
    )
    path = tmp_path / ("fuzz.json" if as_array else "fuzz.jsonl")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))
    agree(path)  # raises if anything but BadInputError escapes, or if they disagree


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv"]))
def test_fuzz_bytes_review_and_trainer_agree(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"fuzz{suffix}"
    head = {
        ".jsonl": b'{"prompt": "a", "completion": "b"}\n',
        ".json": b'[{"prompt": "a", "completion": "b"},',
        ".csv": b"prompt,completion\na,b\n",
    }
    path.write_bytes(head[suffix] + data)
    agree(path)  # raises if anything but BadInputError escapes, or if they disagree
