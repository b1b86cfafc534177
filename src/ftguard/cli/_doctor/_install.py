"""Checks of what is installed: ftguard, its dependencies and extras, torch, the C kernel.

Packages are found with :func:`importlib.util.find_spec` and their distribution metadata,
never imported (``sys.modules[name] = None``, Python's mark of a blocked import, reads as
missing); torch's build is read from ``torch/version.py`` without running it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import platform
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ftguard import __version__
from ftguard.cli._doctor._model import Check

__all__ = ["check_extras", "check_install", "check_kernel", "check_torch", "find", "requirements"]

_REQUIREMENT = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$"
)
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_EXTRA_HINTS = {"dev": "pip install -e '.[dev]' (from a source checkout: make install)"}


class _Requirement(BaseModel):
    name: str
    spec: str
    extra: str | None


def requirements() -> list[_Requirement] | None:
    """The declared requirements of ftguard (core and per extra), or None when not installed."""
    try:
        lines = importlib.metadata.requires("ftguard") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = []
    for line in lines:
        match = _REQUIREMENT.match(line)
        if match is None or match.group(1).lower() == "ftguard":  # `all` names the others
            continue
        extra = _EXTRA_MARKER.search(match.group(3) or "")
        found.append(
            _Requirement(name=match.group(1), spec=match.group(2), extra=extra and extra.group(1))
        )
    return found


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def find(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, or a blocked module
        return False


def _import_names(dist: importlib.metadata.Distribution | None, name: str) -> list[str]:
    """The top-level modules a distribution provides (its normalised name where it says none)."""
    guess = _normal(name)
    if dist is None or find(guess):
        return [guess]
    text = dist.read_text("top_level.txt")
    if text:
        names = [n.strip() for n in text.splitlines() if n.strip() and not n.startswith("_")]
    else:
        names = sorted(
            {
                f.parts[0].removesuffix(".py")
                for f in dist.files or []
                if len(f.parts) > 1
                and f.parts[-1] == "__init__.py"
                and not f.parts[0].endswith((".dist-info", ".data"))
            }
        )
    return names or [guess]


class _Package(BaseModel):
    name: str
    spec: str
    version: str | None
    importable: bool

    @property
    def ok(self) -> bool:
        return self.version is not None and self.importable

    def describe(self) -> str:
        if self.version is None:
            return self.name
        if not self.importable:
            return f"{self.name} {self.version} (installed, not importable)"
        return f"{self.name} {self.version}"


def _package(req: _Requirement) -> _Package:
    try:
        dist: importlib.metadata.Distribution | None = importlib.metadata.distribution(req.name)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    importable = all(find(m) for m in _import_names(dist, req.name))
    return _Package(
        name=req.name, spec=req.spec, version=dist.version if dist else None, importable=importable
    )


def check_install(reqs: list[_Requirement] | None) -> list[Check]:
    """The ftguard package itself and its core dependencies (a missing one is an error)."""
    location = str(Path(__file__).resolve().parents[1])
    checks = [
        Check(
            id="ftguard",
            section="install",
            name="ftguard",
            status="ok" if reqs is not None else "warn",
            detail=f"{__version__} at {location}"
            + (
                ""
                if reqs is not None
                else " (no distribution metadata: running from a source tree?)"
            ),
            fix=None
            if reqs is not None
            else "pip install -e . (from a source checkout: make install)",
            data={
                "version": __version__,
                "location": location,
                "python": platform.python_version(),
            },
        )
    ]
    if reqs is None:
        return checks
    core = [_package(r) for r in reqs if r.extra is None]
    bad = [p for p in core if not p.ok]
    checks.append(
        Check(
            id="core",
            section="install",
            name="core dependencies",
            status="error" if bad else "ok",
            detail=(
                f"missing: {', '.join(p.describe() for p in bad)}"
                if bad
                else f"all {len(core)} installed and importable"
            ),
            fix=("pip install " + " ".join(f"'{p.name}{p.spec}'" for p in bad) if bad else None),
            core=True,
            data={"packages": {p.name: p.version for p in core}, "missing": [p.name for p in bad]},
        )
    )
    return checks


def check_extras(reqs: list[_Requirement] | None) -> list[Check]:
    """Each optional extra of pyproject.toml, and whether all its packages are there."""
    if reqs is None:
        return []
    extras: dict[str, list[_Package]] = {}
    for req in reqs:
        if req.extra is not None and req.extra != "all":  # `all` is the union of the others
            extras.setdefault(req.extra, []).append(_package(req))
    checks = []
    for extra, packages in extras.items():
        bad = [p for p in packages if not p.ok]
        checks.append(
            Check(
                id=f"extra:{extra}",
                section="extras",
                name=f"ftguard[{extra}]",
                status="missing" if bad else "ok",
                detail=(
                    f"missing: {', '.join(p.describe() for p in bad)}"
                    if bad
                    else ", ".join(p.describe() for p in packages)
                ),
                fix=(
                    _EXTRA_HINTS.get(extra, f"pip install 'ftguard[{extra}]'")
                    + (" torch==2.13.0" if extra == "ml" else "")
                    if bad
                    else None
                ),
                data={
                    "packages": {p.name: p.version for p in packages},
                    "missing": [p.name for p in bad],
                },
            )
        )
    return checks


def _torch_build(location: Path) -> dict[str, Any]:
    """The assignments of ``torch/version.py``, read without running it."""
    try:
        tree = ast.parse((location / "version.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    found: dict[str, Any] = {}
    target: ast.expr
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name) and value is not None:
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return found


def check_torch(reqs: list[_Requirement] | None) -> Check:
    """The version and build (CPU or CUDA) of torch, without importing it."""
    pin = next((r.spec for r in reqs or [] if r.name.lower() == "torch"), "")
    pinned = pin[2:].strip() if pin.startswith("==") else None
    fix_pin = f"pip install torch=={pinned}" if pinned else "pip install torch"
    spec = importlib.util.find_spec("torch") if find("torch") else None
    if spec is None or not spec.submodule_search_locations:
        return Check(
            id="torch",
            section="extras",
            name="torch",
            status="missing",
            detail="not installed (needed by training, eval and the embedding scanners)",
            fix=f"pip install 'ftguard[ml]' {fix_pin.removeprefix('pip install ')}",
        )
    build = _torch_build(Path(list(spec.submodule_search_locations)[0]))
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = str(build.get("__version__", "unknown"))
    cuda, rocm = build.get("cuda"), build.get("hip")
    kind = f"CUDA {cuda} build" if cuda else f"ROCm {rocm} build" if rocm else "CPU build"
    off_pin = pinned is not None and version.split("+")[0] != pinned
    return Check(
        id="torch",
        section="extras",
        name="torch",
        status="warn" if off_pin else "ok",
        detail=f"{version}, {kind}"
        + (f" (ftguard[ml] pins {pinned})" if off_pin else "")
        + ("; GPU visibility not checked (that needs importing torch)" if cuda or rocm else ""),
        fix=fix_pin if off_pin else None,
        data={"version": version, "cuda": cuda, "hip": rocm, "pinned": pinned},
    )


def check_kernel() -> Check:
    """The weight diff's compiled C kernel, or the numpy fallback, as ``weights`` chooses."""
    from ftguard.weights import KERNEL

    try:
        spec = importlib.util.find_spec("ftguard.weights._fused")
    except (ImportError, ValueError):
        spec = None
    path = spec.origin if spec is not None else None
    forced = os.environ.get("FTGUARD_WEIGHTS_KERNEL", "").strip().lower() == "numpy"
    data = {"kernel": KERNEL, "path": path, "forced_numpy": forced}
    if KERNEL == "c":
        return Check(
            id="kernel",
            section="install",
            name="weight diff kernel",
            status="ok",
            detail=f"compiled C kernel ({path})",
            data=data,
        )
    if forced:
        return Check(
            id="kernel",
            section="install",
            name="weight diff kernel",
            status="info",
            detail="numpy, chosen by FTGUARD_WEIGHTS_KERNEL=numpy"
            + (f" (the C kernel is built: {path})" if path else ""),
            fix="unset FTGUARD_WEIGHTS_KERNEL",
            data=data,
        )
    return Check(
        id="kernel",
        section="install",
        name="weight diff kernel",
        status="warn",
        detail="numpy fallback (the C kernel was not built or does not load): "
        "3.5-4.6x slower on cached models" + (f"; found but not loadable: {path}" if path else ""),
        fix="install a C compiler, then pip install --force-reinstall --no-deps ftguard "
        "(from a source checkout: make install)",
        data=data,
    )
