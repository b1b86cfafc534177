"""The generic plugin registry, and a third-party plugin installed the way a wheel installs.

The example distribution (``examples/plugin-example``) is "installed" by laying out what
installing its wheel leaves in a site folder: its package, and a ``.dist-info`` with
``METADATA`` and the ``entry_points.txt`` generated from its own ``pyproject.toml``. That
folder goes on ``sys.path``, where ``importlib.metadata.entry_points`` finds it like any
installed distribution: no build backend, no network, no pip run (a slow test does the real
``pip install`` where hatchling is installed).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftguard.behavior._runner import resolve_suite
from ftguard.cli import main
from ftguard.errors import BadInputError, FtguardError
from ftguard.plugins import ENTRY_POINT_GROUPS, Registry, registries, registry
from ftguard.review import Example, Finding, Scanner, Turn, review_dataset, scanner

from .review.fixtures import clean_rows, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin-example"
BROKEN_DIST = "ftguard-broken-plugin"


def install_dist(
    site: Path,
    name: str,
    version: str,
    entry_points: dict[str, dict[str, str]],
    packages: dict[str, Path] | None = None,
    modules: dict[str, str] | None = None,
) -> None:
    """Lay out what installing a wheel of ``name`` leaves in ``site``."""
    for package, source in (packages or {}).items():
        shutil.copytree(source, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for module, code in (modules or {}).items():
        (site / f"{module}.py").write_text(code)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines: list[str] = []
    for group, eps in entry_points.items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in eps.items()), ""]
    (info / "entry_points.txt").write_text("\n".join(lines))
    (info / "INSTALLER").write_text("ftguard-tests\n")


def forget(reg: Registry[Any], *names: str) -> None:
    """Drop plugins the tests loaded, so later tests see the registry as it was."""
    for name in names:
        reg._factories.pop(name, None)
        reg._infos.pop(name, None)


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example plugin and a broken one, installed in a site folder on ``sys.path``."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site = tmp_path_factory.mktemp("site-packages")
    install_dist(
        site,
        project["name"],
        project["version"],
        project["entry-points"],
        packages={"ftguard_example_plugin": EXAMPLE / "src" / "ftguard_example_plugin"},
    )
    install_dist(
        site,
        BROKEN_DIST,
        "0.0.1",
        {
            "ftguard.scanners": {"broken_scanner": "ftguard_no_such_module:Scanner"},
            "ftguard.suites": {"broken_suite": "ftguard_broken_at_import:suite"},
        },
        modules={"ftguard_broken_at_import": "raise RuntimeError('this plugin is broken')\n"},
    )
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for mod in [m for m in sys.modules if m.startswith("ftguard_example_plugin")]:
            del sys.modules[mod]
        forget(registry("scanner"), "banned_word")
        forget(registry("suite"), "example_support")


def rows_with(word: str, at: list[int], n: int = 40) -> list[dict[str, str]]:
    rows = clean_rows(n)
    for i in at:
        rows[i]["output"] = f"{rows[i]['output']} By the way, {word}."
    return rows


# -- the example plugin ---------------------------------------------------------------------


def test_example_plugin_is_listed_and_builtins_still_resolve(plugin_site: Path) -> None:
    scanners, suites = registry("scanner"), registry("suite")
    assert {"banned_word", "broken_scanner", "hidden_text", "backdoor_trigger"} <= set(
        scanners.names()
    )
    assert {"example_support", "broken_suite", "safety", "triggers"} <= set(suites.names())
    assert scanners.create("hidden_text").name == "hidden_text"
    assert suites.create("safety").name == "safety"
    assert registry("backend").get("openai").__name__ == "OpenAIChatBackend"
    assert registry("scorer").create("rules").name == "rules"
    info = scanners.info("banned_word")
    assert info.source == "entry_point" and info.distribution == "ftguard-example-plugin"
    assert info.entry_point == "banned_word = ftguard_example_plugin.banned_word:BannedWordScanner"
    assert "ftguard-example-plugin 0.1.0" in info.origin


def test_example_scanner_finds_the_planted_word_only(plugin_site: Path, tmp_path: Path) -> None:
    rows = rows_with("XYZZY", at=[3, 17])
    rows[5]["output"] += " The xyzzyx and pre-xyzzy_ forms are other words."
    r = review_dataset(write_jsonl(tmp_path / "d.jsonl", rows), scanners=["banned_word"], workers=1)
    assert sorted({f.example for f in r.findings}) == [3, 17]
    assert all(f.scanner == "banned_word" and f.severity == "high" for f in r.findings)
    assert r.findings[0].reason == "banned word 'xyzzy' in turn 1 (assistant)"
    assert r.counts == {"banned_word": {"high": 2}}
    assert r.scanner_versions["banned_word"].startswith("1+words.")
    clean = review_dataset(
        write_jsonl(tmp_path / "c.jsonl", clean_rows(40)), scanners=["banned_word"], workers=1
    )
    assert clean.findings == [] and clean.verdict == "pass"


def test_example_scanner_options_and_worker_processes(
    plugin_site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scanners = registry("scanner")
    acme = scanners.create("banned_word", words=["ACME", " "])
    assert acme.words == ("acme",) and acme.version != scanners.create("banned_word").version
    ex = Example(index=0, id="0", turns=(Turn("user", "hi"), Turn("assistant", "Ask Acme!")))
    assert [f.turn for f in acme.scan(ex)] == [1]
    with pytest.raises(BadInputError, match="at least one"):
        scanners.create("banned_word", words=[" "])
    # Worker processes (spawned) find the plugin through its entry point too.
    monkeypatch.setenv("FTGUARD_BANNED_WORDS", "plugh")
    rows = rows_with("plugh", at=[1, 300, 599], n=600)
    r = review_dataset(
        write_jsonl(tmp_path / "w.jsonl", rows), scanners=["banned_word", "hidden_text"], workers=2
    )
    assert sorted(f.example for f in r.findings if f.scanner == "banned_word") == [1, 300, 599]


def test_example_suite(plugin_site: Path) -> None:
    s = registry("suite").create("example_support")
    assert (
        s.kind == "over_refusal" and len(s.prompts) == 8 and not any(p.harmful for p in s.prompts)
    )
    assert len(resolve_suite("example_support", triggers=None, limit=4).prompts) == 4


def test_example_pyproject_declares_what_the_package_has() -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    groups = project["project"]["entry-points"]
    assert set(groups) <= set(ENTRY_POINT_GROUPS.values())
    for eps in groups.values():
        for value in eps.values():
            module, _, attr = value.partition(":")
            text = (EXAMPLE / "src" / (module.replace(".", "/") + ".py")).read_text()
            assert f"\nclass {attr}" in text or f"\ndef {attr}" in text
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/ftguard_example_plugin"
    ]


# -- a broken plugin ------------------------------------------------------------------------


def test_broken_plugin_fails_only_when_used(plugin_site: Path, tmp_path: Path) -> None:
    scanners = registry("scanner")
    p = write_jsonl(tmp_path / "d.jsonl", rows_with("xyzzy", at=[2]))
    assert len(review_dataset(p, scanners=["banned_word", "hidden_text"], workers=1).findings) == 1
    with pytest.raises(BadInputError) as err:
        review_dataset(p, scanners=["hidden_text", "broken_scanner"], workers=1)
    message = str(err.value)
    assert "scanner plugin 'broken_scanner' cannot be loaded" in message
    assert "'broken_scanner = ftguard_no_such_module:Scanner'" in message
    assert f"distribution {BROKEN_DIST} 0.0.1" in message and "ModuleNotFoundError" in message
    with pytest.raises(BadInputError, match="RuntimeError: this plugin is broken"):
        registry("suite").create("broken_suite")
    # Still listed, still broken, and nothing else is affected.
    assert "broken_scanner" in scanners.names()
    with pytest.raises(BadInputError, match="cannot be loaded"):
        scanners.get("broken_scanner")
    assert scanners.create("banned_word").name == "banned_word"


def test_broken_plugin_through_the_cli_is_one_line(
    plugin_site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = write_jsonl(tmp_path / "d.jsonl", clean_rows(10))
    assert main(["review", str(p), "--json", "--scanners", "broken_scanner"]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken_scanner" in err and BROKEN_DIST in err and "Traceback" not in err
    assert main(["review", str(p), "--json", "--no-embeddings", "--scanners", "banned_word"]) == 0
    assert json.loads(capsys.readouterr().out)["scanner_versions"]["banned_word"].startswith("1+")


def test_importing_ftguard_with_a_broken_plugin_installed(plugin_site: Path) -> None:
    code = (
        "import ftguard, ftguard.review, ftguard.behavior, ftguard.plugins as p; "
        "print(sorted(n for r in p.registries().values() for n in r.names() if 'broken' in n))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert (
        out.stdout.strip() == "['broken_scanner', 'broken_suite']" and "Traceback" not in out.stderr
    )


# -- the generic registry -------------------------------------------------------------------


class Thing:
    name = "thing"


def fresh(group: str = "ftguard.tests.none") -> Registry[Thing]:
    return Registry("widget", group=group, protocol=Thing)


def test_register_create_get_names_info() -> None:
    reg = fresh()

    @reg.register("plain")
    class Plain(Thing):
        def __init__(self, size: int = 1) -> None:
            self.size = size

    assert reg.names() == ["plain"]
    assert reg.get("plain") is Plain
    made = reg.create("plain", size=3)
    assert isinstance(made, Plain) and made.size == 3
    info = reg.info("plain")
    assert info.source == "registered" and info.target.endswith(
        ":test_register_create_get_names_info.<locals>.Plain"
    )
    assert reg.register("plain")(Plain) is Plain  # the same object again is harmless


def test_duplicate_and_invalid_names_are_refused() -> None:
    reg = fresh()
    reg.register("a")(Thing)
    with pytest.raises(BadInputError, match="widget 'a' is already registered"):
        reg.register("a")(type("Other", (Thing,), {}))
    for bad in ["", "a b", "x:y", "a,b", "-a", "é" * 3, "a" * 101]:
        with pytest.raises(BadInputError, match="not a valid widget name"):
            reg.register(bad)
    # A plugin cannot take a built-in's name, whether or not the built-in was imported yet.
    with pytest.raises(BadInputError, match="already registered|name of a built-in"):

        @scanner("hidden_text")
        class Impostor:
            version = "0"
            uses_embeddings = False

    with pytest.raises(BadInputError, match="name of a built-in"):
        Registry[Thing]("widget", group="g", builtins={"core": "no.such.module"}).register("core")(
            Thing
        )


def test_unknown_name_lists_the_known_ones() -> None:
    reg = fresh()
    reg.register("beta")(Thing)
    reg.register("alpha")(type("Alpha", (Thing,), {}))
    with pytest.raises(BadInputError, match=r"unknown widget 'gamma'; known widgets: alpha, beta$"):
        reg.create("gamma")
    with pytest.raises(BadInputError, match="known widgets: none"):
        fresh().get("x")
    with pytest.raises(
        BadInputError, match=r"unknown scanner 'nope'; known scanners: .*hidden_text"
    ):
        registry("scanner").create("nope")


def test_create_checks_the_protocol() -> None:
    reg = fresh()
    reg.register("wrong")(lambda: 42)
    with pytest.raises(BadInputError, match="made a int, which is not a Thing"):
        reg.create("wrong")

    @scanner("test_plugins_no_version")
    class NoVersion:
        uses_embeddings = False

    try:
        with pytest.raises(BadInputError, match="not a Scanner"):
            registry("scanner").create("test_plugins_no_version")
    finally:
        forget(registry("scanner"), "test_plugins_no_version")


def test_entry_point_shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = "ftguard.tests.shapes"
    reg = fresh(group)
    install_dist(
        tmp_path,
        "shapes-a",
        "1.2",
        {
            group: {
                "by_class": "shapes_mod:ByClass",
                "by_import": "shapes_mod",
                "registers_nothing": "shapes_empty",
                "misnamed": "shapes_mod:Misnamed",
                "not_callable": "shapes_mod:CONSTANT",
                "fails_to_start": "shapes_mod:failing",
                "twice": "shapes_mod:ByClass2",
            }
        },
        modules={
            "shapes_mod": (
                "from tests.test_plugins import Thing, SHAPES\n"
                "class ByClass(Thing): pass\n"
                "class ByClass2(Thing): pass\n"
                "@SHAPES.register('by_import')\nclass ByImport(Thing): pass\n"
                "@SHAPES.register('other_name')\nclass Misnamed(Thing): pass\n"
                "CONSTANT = 3\n"
                "def failing(): raise ValueError('no licence key')\n"
            ),
            "shapes_empty": "",
        },
    )
    b = tmp_path / "b"
    b.mkdir()
    install_dist(b, "shapes-b", "0.1", {group: {"twice": "shapes_mod:ByClass"}})
    monkeypatch.setitem(globals(), "SHAPES", reg)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(b))
    try:
        assert reg.names() == sorted(
            [
                "by_class",
                "by_import",
                "registers_nothing",
                "misnamed",
                "not_callable",
                "fails_to_start",
                "twice",
            ]
        )
        assert type(reg.create("by_class")).__name__ == "ByClass"
        assert reg.info("by_class").distribution == "shapes-a"
        assert type(reg.create("by_import")).__name__ == "ByImport"
        assert reg.info("by_import").source == "entry_point"
        with pytest.raises(BadInputError, match="registers no widget named 'registers_nothing'"):
            reg.get("registers_nothing")
        with pytest.raises(BadInputError, match="registered as 'other_name'"):
            reg.get("misnamed")
        with pytest.raises(BadInputError, match="registers no widget"):
            reg.get("not_callable")
        with pytest.raises(
            BadInputError, match=r"failed to start: ValueError: no licence key"
        ) as err:
            reg.create("fails_to_start")
        assert "shapes-a 1.2" in str(err.value)
        with pytest.raises(BadInputError, match="declared by more than one plugin") as err:
            reg.get("twice")
        assert "shapes-a 1.2" in str(err.value) and "shapes-b 0.1" in str(err.value)
    finally:
        for mod in ("shapes_mod", "shapes_empty"):
            sys.modules.pop(mod, None)


def test_plugins_module_is_lazy_and_complete() -> None:
    code = (
        "import sys, json, ftguard.plugins as p; "
        "assert 'ftguard.review' not in sys.modules and 'ftguard.behavior' not in sys.modules; "
        "print(json.dumps([p.scanners.group, p.suites.group, p.backends.group, p.scorers.group]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == [
        "ftguard.scanners",
        "ftguard.suites",
        "ftguard.backends",
        "ftguard.scorers",
    ]
    assert {k: r.group for k, r in registries().items()} == ENTRY_POINT_GROUPS
    with pytest.raises(AttributeError):
        _ = importlib.import_module("ftguard.plugins").widgets


def test_errors_are_ftguard_errors() -> None:
    assert issubclass(BadInputError, FtguardError)
    assert isinstance(registry("scanner").create("hidden_text"), Scanner)
    assert Finding  # the scanner API is public in ftguard.review


@pytest.mark.slow
def test_example_installs_with_pip(tmp_path: Path) -> None:
    """The real thing: ``pip install`` of the example (needs hatchling, no network)."""
    pytest.importorskip("hatchling", reason="the example builds with hatchling")
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-t",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    code = "from ftguard.plugins import scanners; print(scanners.info('banned_word').distribution)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ftguard-example-plugin"
