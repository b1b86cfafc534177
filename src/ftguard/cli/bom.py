"""CLI: ``ftguard bom JOB`` writes the job's CycloneDX 1.6 ML-BOM."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, console, print_json, workspace
from ftguard.control import service
from ftguard.errors import BadInputError


def _write(document: dict[str, object], path: Path) -> None:
    """Write the BOM whole or not at all (a temporary file renamed into place)."""
    text = json.dumps(document, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"cannot write the BOM to {path}: {exc.strerror or exc}") from exc


@app.command("bom")
def bom(
    job_id: Annotated[str, typer.Argument(help="A trained job.")],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Where to write the BOM ('-' for stdout; default: the job's reports folder, "
            "bom.cdx.json).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the job's AI bill of materials (CycloneDX 1.6 ML-BOM, validated against its schema).

    The output model is a machine-learning-model component with its files' SHA-256 digests and
    a model card (purpose, approved training config); the base model and the dataset are
    components with theirs; the gate's attestations and model signature are referenced.
    """
    ws = workspace()
    document = service.job_bom(ws, job_id)
    if output == "-":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    path = Path(output) if output else ws.reports_dir / job_id / "bom.cdx.json"
    _write(document, path)
    components = 1 + len(document.get("components") or [])  # type: ignore[arg-type]
    if as_json:
        print_json(
            {
                "job": job_id,
                "bom": str(path),
                "spec_version": document.get("specVersion"),
                "serial_number": document.get("serialNumber"),
                "components": components,
            }
        )
    else:
        console.print(
            f"BOM of {escape(job_id)} (CycloneDX {document.get('specVersion')}, "
            f"{components} components): {escape(str(path))}"
        )
