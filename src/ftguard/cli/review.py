"""CLI: ``ftguard review`` (registered on the root app when imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ftguard.cli._app import app
from ftguard.errors import BadInputError, NotFoundError

__all__ = ["parse_column_map", "review"]


def parse_column_map(text: str | None) -> dict[str, str] | None:
    """Parse ``k=v,k=v`` (canonical field = the file's column)."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadInputError(f"--column-map: expected FIELD=COLUMN pairs, got {part!r}")
        out[key.strip()] = value.strip()
    return out


@app.command("review")
def review(
    target: Annotated[str, typer.Argument(help="A dataset file (standalone review) or a job id.")],
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="The stated purpose of the fine-tune.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the review as one JSON object.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write an HTML report to this file.")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Force the format: jsonl, json, csv, parquet.")
    ] = None,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--column-map", help="FIELD=COLUMN,... e.g. instruction=question,output=answer."
        ),
    ] = None,
    scanners: Annotated[
        str | None, typer.Option("--scanners", help="Comma-separated scanner names (default: all).")
    ] = None,
    provenance: Annotated[
        Path | None, typer.Option("--provenance", help="Provenance manifest (JSON/YAML).")
    ] = None,
    no_embeddings: Annotated[
        bool, typer.Option("--no-embeddings", help="Skip the embedding-based scanners.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: CPU count).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="Where the review runs: local, or ray (RAY_ADDRESS, else a local Ray "
            "runtime; needs ftguard[ray]). Default: $FTGUARD_ENGINE, else the policy's.",
        ),
    ] = None,
    acting_user: Annotated[
        str | None, typer.Option("--as", help="Act as this identity (job mode).")
    ] = None,
) -> int:
    """Review a fine-tuning dataset (exit 0 pass, 1 block) or run the review of a job."""
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    path = Path(target)
    names = [s.strip() for s in scanners.split(",") if s.strip()] if scanners else None
    options: dict[str, object] = {"embeddings": not no_embeddings}
    if names:
        options["scanners"] = names
    if workers is not None:
        options["workers"] = workers
    if engine is not None:
        from ftguard.review import choose_engine

        options["engine"] = choose_engine(engine)
    if not path.is_file():
        if fmt or column_map or provenance:
            raise BadInputError(
                "--format, --column-map and --provenance apply to a dataset file, not to a job"
            )
        try:
            from ftguard.cli._common import actor_or_default, remote_client, workspace
            from ftguard.control.service import review_job
        except ImportError as exc:
            raise NotFoundError(f"no such dataset file or job: {target}") from exc
        client = remote_client(acting_user)
        if client is not None:
            if purpose is not None or names or no_embeddings:
                raise BadInputError(
                    "a job's review runs the policy's full review on the job's stated purpose"
                )
            if engine is not None:
                raise BadInputError(
                    "the team server chooses where a job's review runs "
                    "(FTGUARD_ENGINE where the server runs, or the policy)"
                )
            from ftguard.review import DatasetReview

            answer = client.call("POST", f"/jobs/{target}/review")
            result_review = DatasetReview.model_validate(answer["review"])
        else:
            result_review, _job = review_job(
                workspace(),
                actor=actor_or_default(acting_user),
                job_id=target,
                purpose=purpose,
                progress=not as_json,
                **options,
            )
    else:
        from ftguard.review import review_dataset

        result_review = review_dataset(
            path,
            purpose=purpose,
            format=fmt,
            column_map=parse_column_map(column_map),
            provenance=provenance,
            progress=not as_json,
            **options,  # type: ignore[arg-type]
        )
    from ftguard.review import render_review_html

    if html is not None:
        try:
            html.write_text(render_review_html(result_review), encoding="utf-8")
        except OSError as exc:
            raise BadInputError(f"{html}: cannot write the report ({exc.strerror})") from exc
    if as_json:
        typer.echo(json.dumps(result_review.to_json_dict(), ensure_ascii=False))
    else:
        _print_summary(result_review)
    return 0 if result_review.verdict == "pass" else 1


def _print_summary(r: object) -> None:
    from rich.console import Console
    from rich.text import Text

    from ftguard.cli._common import user_text
    from ftguard.review import DatasetReview

    assert isinstance(r, DatasetReview)
    con = Console()
    color = "green" if r.verdict == "pass" else "red"
    con.print(
        Text.assemble(
            (r.verdict.upper(), f"bold {color}"),
            f"  {r.examples} examples, {r.flagged_examples} flagged  (",
            user_text(r.dataset_path),
            ")",
        )
    )
    for reason in r.verdict_reasons:
        con.print(f"  - {reason}", markup=False, highlight=False)
    for name, per in sorted(r.counts.items()):
        con.print(
            f"  {name}: " + ", ".join(f"{k}={v}" for k, v in per.items()),
            markup=False,
            highlight=False,
        )
    for t in r.triggers[:3]:
        con.print(
            f"  trigger {t.text!r}: score {t.score:.1f}, {t.support}/{t.occurrences} anomalous",
            markup=False,
            highlight=False,
        )
    for name, why in r.skipped_scanners.items():
        con.print(f"  skipped {name}: {why}", markup=False, highlight=False)
