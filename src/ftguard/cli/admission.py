"""CLI: ``ftguard admission serve`` (the Kubernetes webhook) and ``ftguard admission review``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ftguard.cli._app import app
from ftguard.cli._common import JsonOption, err_console, print_json, user_text

if TYPE_CHECKING:
    from ftguard.integrations import AdmissionConfig

admission_app = typer.Typer(
    help="Admission at serving time: a Kubernetes validating webhook over the gate's check.",
    no_args_is_help=True,
)
app.add_typer(admission_app, name="admission")

TrustedKey = Annotated[
    Path,
    typer.Option(
        "--trusted-key", help="The workspace's attestation public key (keys/attestation.pub)."
    ),
]
ModelRoots = Annotated[
    list[Path] | None,
    typer.Option(
        "--model-root",
        help="A folder model and attestation paths must lie in (repeat it); nothing else is read.",
    ),
]
Unannotated = Annotated[
    str,
    typer.Option(
        "--unannotated",
        help="Pods and InferenceServices without ftguard.dev/model-uri: deny or allow.",
    ),
]
Witness = Annotated[
    str | None,
    typer.Option("--witness", help="The audit log's witness (file:PATH): the head must be in it."),
]
RevocationsOption = Annotated[
    Path | None,
    typer.Option(
        "--revocations",
        help="The workspace's signed revocation list ('ftguard revocations --out FILE'), "
        "read afresh for every review: a revoked job's model is denied.",
    ),
]
StorageMap = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-map",
        help="PREFIX=DIR: where the webhook sees what a storageUri with this prefix names "
        "(pvc://NAMESPACE/CLAIM/=/mnt/models; repeat it).",
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--mlflow-tracking-uri",
        help="The MLflow tracking server for models:/ annotations (default: MLFLOW_TRACKING_URI).",
    ),
]


def _config(
    trusted_key: Path,
    model_roots: list[Path] | None,
    unannotated: str,
    witness: str | None,
    tracking_uri: str | None,
    storage_map: list[str] | None = None,
    revocations: Path | None = None,
) -> AdmissionConfig:
    from ftguard.attest import load_public_key_file
    from ftguard.errors import BadInputError
    from ftguard.integrations import AdmissionConfig

    if unannotated not in ("deny", "allow"):
        raise BadInputError("--unannotated is deny or allow")
    policy: Literal["allow", "deny"] = "allow" if unannotated == "allow" else "deny"
    roots = tuple(model_roots or ())
    for root in roots:
        if not root.is_dir():
            raise BadInputError(f"--model-root {root} is not a folder")
    mapped: list[tuple[str, Path]] = []
    for item in storage_map or ():
        prefix, eq, folder = item.partition("=")
        if not eq or "://" not in prefix or not prefix.endswith("/") or not Path(folder).is_dir():
            raise BadInputError(
                f"--storage-map {item!r}: give PREFIX=DIR, a URI prefix ending in / "
                "(pvc://NAMESPACE/CLAIM/) and a folder here"
            )
        mapped.append((prefix, Path(folder)))
    if witness is not None and ":" not in witness.split("/")[0]:
        witness = f"file:{witness}"
    return AdmissionConfig(
        trusted_key=load_public_key_file(trusted_key),
        model_roots=roots,
        unannotated=policy,
        witness=witness,
        mlflow_tracking_uri=tracking_uri,
        storage_map=tuple(mapped),
        revocations=revocations,
    )


@admission_app.command("serve")
def serve(
    trusted_key: TrustedKey,
    model_roots: ModelRoots = None,
    unannotated: Unannotated = "deny",
    witness: Witness = None,
    tracking_uri: TrackingUri = None,
    storage_map: StorageMap = None,
    revocations: RevocationsOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8443,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="PEM certificate (chain) to serve HTTPS.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its PEM private key.")] = None,
) -> None:
    """Serve the validating admission webhook: POST AdmissionReview v1 to /validate."""
    from ftguard.integrations import make_admission_server

    config = _config(
        trusted_key, model_roots, unannotated, witness, tracking_uri, storage_map, revocations
    )
    server = make_admission_server(
        config,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    scheme = "https" if tls_cert else "http"
    err_console.print(user_text(f"ftguard admission webhook on {scheme}://{host}:{port}/validate"))
    if tls_cert is None:
        err_console.print(
            user_text(
                "plain HTTP: Kubernetes calls webhooks over HTTPS (give --tls-cert/--tls-key)"
            )
        )
    try:
        server.serve_forever()
    finally:
        server.server_close()


@admission_app.command("review")
def review(
    document: Annotated[
        Path, typer.Argument(help="An AdmissionReview v1 JSON file ('-' for stdin).")
    ],
    trusted_key: TrustedKey,
    model_roots: ModelRoots = None,
    unannotated: Unannotated = "deny",
    witness: Witness = None,
    tracking_uri: TrackingUri = None,
    storage_map: StorageMap = None,
    revocations: RevocationsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer one AdmissionReview as the webhook would (exit 0 allowed, 1 denied)."""
    import sys

    from ftguard._files import read_text_file
    from ftguard.errors import EXIT_VERDICT, BadInputError
    from ftguard.integrations import review_admission

    config = _config(
        trusted_key, model_roots, unannotated, witness, tracking_uri, storage_map, revocations
    )
    text = sys.stdin.read() if str(document) == "-" else read_text_file(document, what="review")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise BadInputError(f"{document} is not JSON") from None
    answer = review_admission(parsed, config)
    response = answer["response"]
    if as_json:
        print_json(answer)
    else:
        verdict = "allowed" if response["allowed"] else "denied"
        typer.echo(f"{verdict}: {response['status']['message']}")
    if not response["allowed"]:
        raise typer.Exit(EXIT_VERDICT)
