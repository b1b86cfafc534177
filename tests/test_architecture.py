"""The package's layers, checked on its source: private modules stay private, imports form no cycle.

Two rules (docs/architecture.md, "Layers"):

- **No cross-package private import.** A top-level package is ``ftguard.X`` (``ftguard.control``,
  ``ftguard.weights``, ...; a top-level module such as ``ftguard.plugins`` is its own). A name
  whose dotted path has a component starting with ``_`` below ``ftguard.X`` (``ftguard.X._y``,
  ``from ftguard.X import _y``, ``ftguard.X.sub._z``) is private to ``ftguard.X``: only modules
  inside ``ftguard.X`` may import it, anywhere in the file (in functions and under
  ``TYPE_CHECKING`` too). Other packages use what ``ftguard.X`` exports.
  The exceptions are :data:`SHARED_INTERNALS`, the top-level private modules that exist to be
  shared by the subpackages (each with its reason).
- **No import cycle.** The imports that run when a module is imported (module level and class
  bodies; not inside functions, not under ``if TYPE_CHECKING:``) form no cycle among ftguard's
  modules. Importing ``ftguard.a.b`` also runs ``ftguard.a``'s ``__init__`` unless the importer
  is itself inside ``ftguard.a`` (then it has run already), so that edge counts too.

Each checker is also run on a small planted tree, so that a broken checker cannot pass silently.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

SHARED_INTERNALS: dict[str, str] = {
    "ftguard._files": "reading a file a user named (regular files only): control, gate, policy, cli",
    "ftguard._html": "the Jinja2 environment and base page every analyzer's report extends",
    "ftguard._lazy": "public names loaded on first use, for the packages that offer light names",
    "ftguard._objects": "object-store (S3) storage roots, read by the server and the CLI",
    "ftguard._progress": "progress bars on stderr for the analyzers, the trainer and the CLI",
    "ftguard._ray": "the Ray runtime the review's and the weights' distributed engines share",
    "ftguard._refusal_rules": "the refusal sentence rules the review and the scorers share",
    "ftguard._registry": "the one plugin Registry type, made public by ftguard.plugins",
    "ftguard._text": "text normalisation for matching, shared by the review and the scorers",
}
"""Top-level private modules that are ftguard's shared internals: private to the distribution,
not to one package, so any ftguard module may import them (they import no package in turn)."""


@dataclass(frozen=True)
class Module:
    """One source module: its dotted name, file, and whether it is a package's ``__init__``."""

    name: str
    path: Path
    is_package: bool


def modules(src: Path, root: str = "ftguard") -> dict[str, Module]:
    """Every module under ``src/root``, by dotted name."""
    found: dict[str, Module] = {}
    for path in sorted((src / root).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imported_names(module: Module, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement reaches: modules and ``module.name`` for ``from``."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    base = _absolute(module, node)
    yield base
    for alias in node.names:
        if alias.name != "*":
            yield f"{base}.{alias.name}"


def _private_part(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _owner(name: str) -> str | None:
    """The top-level package a private dotted name belongs to, or None if it is public."""
    parts = name.split(".")
    if any(_private_part(part) for part in parts[1:]):
        return ".".join(parts[:2])
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def private_imports(
    src: Path, root: str = "ftguard", shared: frozenset[str] = frozenset()
) -> list[str]:
    """Every import of another top-level package's private name, as ``file:line: name``."""
    found: list[str] = []
    for module in modules(src, root).values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            reported: set[str] = set()
            for name in _imported_names(module, node):
                if not _inside(name, root):
                    continue
                owner = _owner(name)
                if owner is None or owner in shared or _inside(module.name, owner):
                    continue
                # One line per private name, by its shortest private prefix.
                parts = name.split(".")
                private = next(
                    ".".join(parts[: i + 1])
                    for i in range(1, len(parts))
                    if _private_part(parts[i])
                )
                if private not in reported:
                    reported.add(private)
                    rel = (
                        module.path.relative_to(src.parent)
                        if src.parent in module.path.parents
                        else module.path
                    )
                    found.append(f"{rel}:{node.lineno}: {module.name} imports {private}")
    return sorted(found)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run on import: not in functions, not under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _load_time_imports(node.body)
            yield from _load_time_imports(node.orelse)
        elif isinstance(node, ast.Try | ast.TryStar):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _load_time_imports(block)
            for handler in node.handlers:
                yield from _load_time_imports(handler.body)
        elif isinstance(node, ast.ClassDef | ast.With | ast.AsyncWith | ast.For | ast.While):
            yield from _load_time_imports(node.body)
            yield from _load_time_imports(getattr(node, "orelse", []))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(src: Path, root: str = "ftguard") -> dict[str, set[str]]:
    """Each module's load-time imports of other modules under ``root``."""
    known = modules(src, root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for module in known.values():
        tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
        own = set(_ancestors(module.name)) | ({module.name} if module.is_package else set())
        edges = graph[module.name]
        for node in _load_time_imports(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _absolute(module, node)
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
                targets = submodules
                if len(submodules) < len(node.names):  # a name read from base: base has run
                    edges.add(base)
                    targets = [*submodules, base]
                elif base not in own:  # only submodules: base runs first unless it is ours
                    targets = [*submodules, base]
            for target in targets:
                # Importing a.b.c runs a and a.b first, unless they are the importer's own.
                for name in [*_ancestors(target), target]:
                    if name in known and name not in own and name != module.name:
                        edges.add(name)
        edges.discard(module.name)
        graph[module.name] = {e for e in edges if e in known}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of ``graph`` with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def connect(start: str) -> None:  # iterative Tarjan
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, set(c)) for c in sorted(components)]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first member of a strongly connected component."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for succ in sorted(graph[node] & component):
            if succ == start:
                return [*paths[node], start]
            if succ not in paths:
                paths[succ] = [*paths[node], succ]
                queue.append(succ)
    raise AssertionError("not a strongly connected component")  # pragma: no cover


# --- the rules on ftguard itself ------------------------------------------------------------


def test_no_cross_package_private_imports() -> None:
    found = private_imports(SRC, shared=frozenset(SHARED_INTERNALS))
    assert not found, "imports of another package's private modules:\n" + "\n".join(found)


def test_shared_internals_exist_and_are_leaves() -> None:
    known = modules(SRC)
    graph = import_graph(SRC)
    for name in SHARED_INTERNALS:
        assert name in known, f"{name} is listed as a shared internal but does not exist"
        packages = {e for e in graph[name] if e.count(".") >= 1 and known[e].is_package}
        assert not packages, f"{name} imports packages at load time: {sorted(packages)}"


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph(SRC))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


# --- the checkers on planted trees -----------------------------------------------------------


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def test_private_imports_finds_every_form(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/_shared.py": "",
            "pkg/plugins.py": "from pkg.a._impl import x\n",
            "pkg/a/__init__.py": "from pkg.a._impl import x\nfrom . import _impl\n",
            "pkg/a/_impl.py": "x = 1\n",
            "pkg/a/sub/__init__.py": "from pkg.a._impl import x\n",
            "pkg/b/__init__.py": "",
            "pkg/b/_use.py": (
                "from typing import TYPE_CHECKING\n"
                "import pkg.a._impl\n"
                "from pkg.a import _impl\n"
                "from pkg._shared import y\n"
                "from pkg.a import x\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.a._impl import x\n"
                "def f():\n"
                "    from ..a._impl import x\n"
            ),
        },
    )
    found = private_imports(src, root="pkg")
    assert [f.split(": ", 1)[1] for f in found] == [
        "pkg.b._use imports pkg.a._impl",
        "pkg.b._use imports pkg.a._impl",
        "pkg.b._use imports pkg._shared",
        "pkg.b._use imports pkg.a._impl",
        "pkg.b._use imports pkg.a._impl",
        "pkg.plugins imports pkg.a._impl",
    ]
    assert found[0].startswith(f"{Path(tmp_path.name, 'pkg', 'b', '_use.py')}:2:")
    assert [f.split(": ", 1)[0].rsplit(":", 1)[1] for f in found[:5]] == ["2", "3", "4", "7", "9"]
    shared = private_imports(src, root="pkg", shared=frozenset({"pkg._shared"}))
    assert len(shared) == 5
    assert not any("pkg._shared" in f for f in shared)


def test_import_cycles_finds_load_time_cycles_only(tmp_path: Path) -> None:
    src = _plant(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import f\n",
            "pkg/b.py": "import pkg.c\n",
            "pkg/c.py": "from pkg import a\n",
            # Not cycles: function-local and TYPE_CHECKING imports.
            "pkg/d.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.e import g\n"
                "def h():\n    from pkg.e import g\n"
            ),
            "pkg/e.py": "from pkg.d import h\n",
            # A package whose __init__ imports its submodules, which import siblings: no cycle.
            "pkg/p/__init__.py": "from pkg.p._one import one\n",
            "pkg/p/_one.py": "from pkg.p._two import two\n",
            "pkg/p/_two.py": "two = 2\n",
            # A submodule reading a name from its own package's __init__: a cycle.
            "pkg/q/__init__.py": "from pkg.q._one import one\nTWO = 2\n",
            "pkg/q/_one.py": "from pkg.q import TWO\n",
            # A cycle through another package's __init__.
            "pkg/r/__init__.py": "from pkg.r._x import x\n",
            "pkg/r/_x.py": "x = 1\n",
            "pkg/s.py": "from pkg.r._x import x\n",
        },
    )
    graph = import_graph(src, root="pkg")
    assert graph["pkg.s"] == {"pkg.r", "pkg.r._x"}
    assert graph["pkg.d"] == set()
    assert import_cycles(graph) == [
        ["pkg.a", "pkg.b", "pkg.c", "pkg.a"],
        ["pkg.q", "pkg.q._one", "pkg.q"],
    ]
    (src / "pkg/r/_x.py").write_text("import pkg.s\n", encoding="utf-8")
    assert ["pkg.r", "pkg.r._x", "pkg.s", "pkg.r"] in import_cycles(import_graph(src, root="pkg"))
