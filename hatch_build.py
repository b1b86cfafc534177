"""Hatchling build hook: compiles ``ftguard.weights._fused``, the weight diff's C kernel.

The kernel is optional: where no C compiler is available the wheel is built without it and
the diff uses its numpy kernel (same statistics, several times slower on a warm page cache).
Set ``FTGUARD_NO_C_KERNEL=1`` to skip the compilation on purpose.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src/ftguard/weights/_fused.c")
MODULE = "ftguard.weights._fused"


def compile_kernel(root: Path, out: Path) -> Path:
    """Compile the kernel into ``out`` with setuptools' compiler settings; the built file."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    args = [] if sys.platform == "win32" else ["-O3", "-fno-strict-aliasing"]
    ext = Extension(MODULE, [str(root / SOURCE)], extra_compile_args=args)
    cmd = build_ext(Distribution({"name": "ftguard-fused", "ext_modules": [ext]}))
    cmd.build_lib, cmd.build_temp = str(out / "lib"), str(out / "temp")
    cmd.force = True  # never reuse an object built from an older source
    cmd.ensure_finalized()
    cmd.run()
    return Path(cmd.get_ext_fullpath(MODULE))


class FusedKernelHook(BuildHookInterface):  # type: ignore[type-arg]
    """Builds the C kernel into the wheel (or next to its source, for an editable install)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("FTGUARD_NO_C_KERNEL"):
            return
        root = Path(self.root)
        try:
            built = compile_kernel(root, root / "build" / "fused")
        except Exception as exc:  # any compiler failure: build the pure-Python wheel
            self.app.display_warning(
                f"ftguard: the C kernel {MODULE} was not built ({exc}); the weight diff will use numpy"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":  # the editable wheel imports from src/: put the module there
            shutil.copy2(built, root / SOURCE.parent / built.name)
        else:
            build_data["force_include"][str(built)] = f"ftguard/weights/{built.name}"
