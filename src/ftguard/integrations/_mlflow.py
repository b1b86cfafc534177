"""MLflow model registry: a job that passed the gate becomes a model version under an alias.

:func:`register_job_model` (``ftguard deploy JOB --mlflow NAME``) checks, before any call to
MLflow, that the job passed the gate, that the caller may deploy it and that its output is
still exactly the attested model; a refusal is an audit event (``mlflow.refused``). It then
uploads the output and the gate's files (attestation, model signature, VSA, test result) as
the artifacts of an MLflow run, registers the run's ``model`` folder as a version of the
registered model (or finds the version already registered with that digest), tags it and
points the alias (default ``approved``) at it, and records ``mlflow.register`` in the audit
log.

:func:`verify_registered_model` (``ftguard verify-deployment --mlflow models:/NAME@approved``)
downloads a version's files and the attestation stored with them and runs the gate's own
deployment check on them; a version ftguard did not register has no attestation and fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ftguard.attest import PublicKey
from ftguard.control import (
    Caller,
    JobState,
    Workspace,
    append_event,
    authenticate,
    chain_state,
    checked_job,
    name_of,
    now_iso,
    policy_in_force,
    require_role,
)
from ftguard.control.service import deploy_job
from ftguard.digests import manifest_of
from ftguard.errors import (
    BadInputError,
    ConflictError,
    FtguardError,
    MissingDependencyError,
    PermissionDeniedError,
    VerificationError,
)
from ftguard.gate import DeploymentReport, Revocations, check_deployment

__all__ = [
    "DEFAULT_ALIAS",
    "TAG_ATTESTATION_SHA256",
    "TAG_JOB_ID",
    "TAG_MODEL_DIGEST",
    "MlflowRegistration",
    "MlflowVerification",
    "parse_models_uri",
    "register_job_model",
    "verify_registered_model",
]

DEFAULT_ALIAS = "approved"
EXPERIMENT = "ftguard"
TAG_JOB_ID = "ftguard.job_id"
TAG_MODEL_DIGEST = "ftguard.model_digest"
"""The output's root digest (sha256 of its manifest), as the attestation's subject."""
TAG_ATTESTATION_SHA256 = "ftguard.attestation_sha256"
"""sha256 of the attestation file stored with the version."""
TAG_MODEL_FILE = "ftguard.model_file"
"""For a single-file output: its name inside the version's ``model`` folder."""
MODEL_ARTIFACTS = "model"
GATE_ARTIFACTS = "ftguard"
_GATE_FILES = ("attestation.json", "model.sig", "vsa.json", "test-result.json")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/ -]{0,255}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,254}$")
_URI = re.compile(r"^models:/(?P<name>[^@]+?)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class MlflowRegistration(BaseModel):
    """What :func:`register_job_model` did."""

    job_id: str
    model_name: str
    version: str
    alias: str
    model_digest: str
    attestation_sha256: str
    run_id: str
    source: str
    created: bool
    """False when the version with this digest was already registered (found, re-aliased)."""
    state: str
    """The job's state afterwards (``deployed``)."""


class MlflowVerification(BaseModel):
    """What :func:`verify_registered_model` found for a registered version."""

    uri: str
    model_name: str
    version: str
    job_id: str | None
    downloaded_to: str | None
    """Where the verified files are (``--download-to``); None when they were removed."""
    report: DeploymentReport


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError("mlflow", "mlflow") from None
    return mlflow


def _client(tracking_uri: str | None) -> tuple[Any, str]:
    mlflow = _mlflow()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise BadInputError(
            "name the MLflow tracking server: --tracking-uri or MLFLOW_TRACKING_URI"
        )
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri), uri


def _checked_names(model_name: str, alias: str) -> None:
    if not _NAME.match(model_name) or "'" in model_name:
        raise BadInputError(
            "the MLflow model name is 1-256 letters, digits, '.', '_', '-', '/' or spaces"
        )
    if not _ALIAS.match(alias) or alias == "latest" or re.fullmatch(r"[vV]\d+", alias):
        raise BadInputError(
            f"{alias!r} is not a valid MLflow alias (letters, digits, '_' and '-'; not "
            "'latest' or v<number>)"
        )


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` as (name, alias, version).

    Raises:
        BadInputError: Any other form.

    """
    match = _URI.match(uri.strip())
    if match is None:
        raise BadInputError(f"{uri!r} is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return match["name"], match["alias"], match["version"]


def _refuse(ws: Workspace, actor: Caller, job_id: str, payload: dict[str, Any]) -> None:
    """Record a refused registration in the audit log (signed by the caller, if they can)."""
    with ws.store.write() as session:
        state = chain_state(ws, session)
        try:
            who = authenticate(state, actor)
        except FtguardError:
            return  # no key to sign with: the refusal itself is the answer
        append_event(
            session,
            ws.audit_key(),
            ts=now_iso(),
            actor=who,
            action="mlflow.refused",
            job_id=job_id,
            payload=payload,
        )


def _gate_files(ws: Workspace, actor: Caller, job_id: str) -> tuple[Path, Path, str]:
    """Check the job may be registered: (its output, its attestation, its state).

    Raises:
        PermissionDeniedError: The caller is neither the requester nor an admin.
        ConflictError: The job did not pass the gate.
        VerificationError: The output is not the attested model any more.

    """
    with ws.store.read() as session:
        state = chain_state(ws, session)
        authenticate(state, actor)
        row = checked_job(session, state, job_id)
        if name_of(actor) != row.requester:
            policy = policy_in_force(ws, state)
            require_role(state, policy, name_of(actor), "admin", to="register others' jobs")
        if row.state not in (JobState.PASSED.value, JobState.DEPLOYED.value):
            raise ConflictError(
                f"job {job_id} is {row.state}: only a job that passed the gate gets an MLflow "
                "alias through ftguard"
            )
        output = Path(str(row.output_path))
        job_state = row.state
    attestation = ws.reports_dir / job_id / "attestation.json"
    if not attestation.is_file():
        raise VerificationError(f"job {job_id} has no attestation at {attestation}")
    report = check_deployment(output, attestation, ws.attestation_public_key())
    if not report.ok:
        raise VerificationError(
            f"job {job_id}'s output does not verify against its attestation: {report.reasons[0]}"
        )
    return output, attestation, job_state


def register_job_model(
    ws: Workspace,
    *,
    actor: Caller,
    job_id: str,
    model_name: str,
    alias: str = DEFAULT_ALIAS,
    tracking_uri: str | None = None,
) -> MlflowRegistration:
    """Register a job that passed the gate as an MLflow model version and alias it.

    The job is marked deployed (as ``ftguard deploy`` does) before MLflow is called; running
    this again for a deployed job finds its version by digest and points the alias at it.

    Args:
        ws: The workspace.
        actor: Who deploys: the job's requester or an admin.
        job_id: A job that passed the gate (or was deployed).
        model_name: The registered model's name in MLflow.
        alias: The alias to point at the version (default ``approved``).
        tracking_uri: The MLflow tracking server (default: ``MLFLOW_TRACKING_URI``).

    Raises:
        ConflictError: The job did not pass the gate (refused before any MLflow call).
        PermissionDeniedError: The caller may not deploy the job (refused likewise).
        VerificationError: Its output is not the attested model (refused likewise).
        MissingDependencyError: mlflow is not installed (``ftguard[mlflow]``).

    """
    _checked_names(model_name, alias)
    try:
        output, attestation, job_state = _gate_files(ws, actor, job_id)
    except (ConflictError, PermissionDeniedError, VerificationError) as exc:
        _refuse(ws, actor, job_id, {"model": model_name, "alias": alias, "reason": exc.message})
        raise
    client, uri = _client(tracking_uri)  # after the checks: a refusal never reaches MLflow
    if job_state == JobState.PASSED.value:
        deploy_job(ws, actor=actor, job_id=job_id)
    digest = manifest_of(output).root
    attestation_sha = hashlib.sha256(attestation.read_bytes()).hexdigest()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # MLflow prints run links on stdout
            version, created = _find_or_create_version(
                client, model_name, job_id, output, attestation, digest, attestation_sha
            )
            client.set_registered_model_alias(model_name, alias, version.version)
    except FtguardError:
        raise
    except Exception as exc:  # MlflowException, connection errors
        raise BadInputError(
            f"MLflow ({_safe(uri)}) refused the registration: {_first_line(exc)} (job {job_id} "
            "is deployed; run the command again to register it)"
        ) from None
    registration = MlflowRegistration(
        job_id=job_id,
        model_name=model_name,
        version=str(version.version),
        alias=alias,
        model_digest=digest,
        attestation_sha256=attestation_sha,
        run_id=str(version.run_id),
        source=str(version.source),
        created=created,
        state=JobState.DEPLOYED.value,
    )
    _record(ws, actor, registration, uri)
    return registration


def _record(ws: Workspace, actor: Caller, registration: MlflowRegistration, uri: str) -> None:
    with ws.store.write() as session:
        state = chain_state(ws, session)
        append_event(
            session,
            ws.audit_key(),
            ts=now_iso(),
            actor=authenticate(state, actor),
            action="mlflow.register",
            job_id=registration.job_id,
            payload={
                "tracking_uri": _safe(uri),
                "model": registration.model_name,
                "version": registration.version,
                "alias": registration.alias,
                "digest": registration.model_digest,
                "attestation_sha256": registration.attestation_sha256,
            },
        )


def _find_or_create_version(
    client: Any,
    name: str,
    job_id: str,
    output: Path,
    attestation: Path,
    digest: str,
    attestation_sha: str,
) -> tuple[Any, bool]:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, tags={"ftguard.managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    try:
        found = client.search_model_versions(
            f"name='{name}' and tags.`{TAG_MODEL_DIGEST}` = '{digest}'"
        )
    except MlflowException:  # a registry that cannot filter on tags: filter here
        found = client.search_model_versions(f"name='{name}'")
    for version in found:
        tags = version.tags or {}
        if tags.get(TAG_MODEL_DIGEST) == digest and tags.get(TAG_JOB_ID) == job_id:
            return version, False
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(EXPERIMENT)
    run = client.create_run(experiment_id, tags={TAG_JOB_ID: job_id, TAG_MODEL_DIGEST: digest})
    run_id = run.info.run_id
    tags = {TAG_JOB_ID: job_id, TAG_MODEL_DIGEST: digest, TAG_ATTESTATION_SHA256: attestation_sha}
    if output.is_dir():
        client.log_artifacts(run_id, str(output), artifact_path=MODEL_ARTIFACTS)
    else:
        client.log_artifact(run_id, str(output), artifact_path=MODEL_ARTIFACTS)
        tags[TAG_MODEL_FILE] = output.name
    for file_name in _GATE_FILES:
        path = attestation.parent / file_name
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=GATE_ARTIFACTS)
    client.set_terminated(run_id)
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/{MODEL_ARTIFACTS}", run_id=run_id, tags=tags
    )
    return version, True


def _safe(uri: str) -> str:
    """A tracking URI fit for the log: no credentials, query or fragment."""
    from ftguard.integrations._webhooks import safe_url

    return safe_url(uri) if "://" in uri else uri.split("?")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _version(client: Any, name: str, alias: str | None, number: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, number)
    except MlflowException as exc:
        raise VerificationError(
            f"MLflow has no version models:/{name}{'@' + alias if alias else '/' + str(number)}"
            f": {_first_line(exc)}"
        ) from None


@contextmanager
def _folder(download_to: Path | None) -> Iterator[Path]:
    if download_to is not None:
        if download_to.exists() and any(download_to.iterdir()):
            raise BadInputError(f"--download-to {download_to} is not empty")
        download_to.mkdir(parents=True, exist_ok=True)
        yield download_to
        return
    with tempfile.TemporaryDirectory(prefix="ftguard-mlflow-") as tmp:
        yield Path(tmp)


def verify_registered_model(
    uri: str,
    trusted_key: str | Path | PublicKey,
    *,
    tracking_uri: str | None = None,
    download_to: Path | None = None,
    witness_heads: list[tuple[int, str]] | None = None,
    model_signing_key: str | Path | None = None,
    base_model: str | Path | None = None,
    follow_adapter_config: bool = True,
    revocations: Revocations | None = None,
) -> MlflowVerification:
    """Download a registered version and check it against the attestation stored with it.

    The checks are the gate's own (:func:`ftguard.gate.check_deployment`): the attestation is
    signed by ``trusted_key`` and names exactly the downloaded files, and the model signature
    it names verifies. ``report.ok`` says whether it may be served; nothing is raised for a
    failed check.

    Args:
        uri: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
        trusted_key: The workspace's attestation public key.
        tracking_uri: The MLflow tracking server (default: ``MLFLOW_TRACKING_URI``).
        download_to: Keep the verified files in this (empty or new) folder: the model in
            ``model/``, the gate's files in ``ftguard/``; default: a temporary folder, removed.
        witness_heads: A witness's ``(seq, hash)`` heads the decision's head must be among.
        model_signing_key: The published model-signing public key, when pinned.
        base_model: For a LoRA adapter, the base model folder it is served on (default: the
            folder its ``adapter_config.json`` names, when it exists here).
        follow_adapter_config: False: check only ``base_model`` (for a service that reads
            only inside its own roots).
        revocations: A verified revocation list; a version of a revoked job fails.

    Raises:
        BadInputError: A malformed URI, or MLflow cannot be reached.
        VerificationError: No such version.
        MissingDependencyError: mlflow is not installed.

    """
    name, alias, number = parse_models_uri(uri)
    client, resolved = _client(tracking_uri)
    version = _version(client, name, alias, number)
    tags = dict(version.tags or {})
    with _folder(download_to) as folder, contextlib.redirect_stdout(sys.stderr):
        report = _download_and_check(
            resolved,
            version,
            tags,
            folder,
            trusted_key,
            witness_heads=witness_heads,
            model_signing_key=model_signing_key,
            base_model=base_model,
            follow_adapter_config=follow_adapter_config,
            revocations=revocations,
        )
    return MlflowVerification(
        uri=uri,
        model_name=name,
        version=str(version.version),
        job_id=tags.get(TAG_JOB_ID),
        downloaded_to=str(download_to) if download_to is not None else None,
        report=report,
    )


def _failed(model: str, reason: str) -> DeploymentReport:
    from ftguard.gate import CheckResult

    return DeploymentReport(
        ok=False,
        model=model,
        checks={"attestation": CheckResult(ok=False, detail=reason)},
        reasons=[reason],
    )


def _download_and_check(
    tracking_uri: str,
    version: Any,
    tags: dict[str, str],
    folder: Path,
    trusted_key: str | Path | PublicKey,
    **checks: Any,
) -> DeploymentReport:
    label = f"models:/{version.name}/{version.version}"
    if TAG_ATTESTATION_SHA256 not in tags or not version.run_id:
        return _failed(
            label,
            f"{label} carries no ftguard attestation: it was not registered by "
            "'ftguard deploy --mlflow' (an alias moved by hand?)",
        )
    model_dir, gate_dir = _download(tracking_uri, version, folder)
    attestation = gate_dir / "attestation.json"
    if not attestation.is_file():
        return _failed(label, f"{label} has no attestation stored with it")
    if hashlib.sha256(attestation.read_bytes()).hexdigest() != tags[TAG_ATTESTATION_SHA256]:
        return _failed(label, f"the attestation stored with {label} is not the one registered")
    model_path, problem = _served_path(model_dir, tags.get(TAG_MODEL_FILE))
    if problem:
        return _failed(label, f"{label}: {problem}")
    report = check_deployment(model_path, attestation, trusted_key, **checks)
    job = report.verification.job_id if report.verification else None
    if report.ok and job != tags.get(TAG_JOB_ID):
        return _failed(label, f"{label} is tagged as job {tags.get(TAG_JOB_ID)}, attested as {job}")
    return report


def _served_path(model_dir: Path, model_file: str | None) -> tuple[Path, str | None]:
    """What the server loads from the downloaded ``model/`` artifact, and why not, if so.

    The ``ftguard.model_file`` tag (a single-file output) is a tag anyone with write access to
    the registry can set: it must name one plain file name, and that file must be all the
    artifact holds, so that what is checked is what a server loading the artifact gets
    (a tag pointing into a subfolder once had an approved copy checked while the folder around
    it, served, held another model).
    """
    if model_file is None:
        return model_dir, None
    if not model_file or model_file in (".", "..") or "/" in model_file or "\\" in model_file:
        return model_dir, f"its {TAG_MODEL_FILE} tag {model_file!r} is not a plain file name"
    entries = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else []
    target = model_dir / model_file
    if entries != [model_file] or target.is_symlink() or not target.is_file():
        return model_dir, (
            f"its {TAG_MODEL_FILE} tag names {model_file!r}, but the model artifact holds "
            f"{', '.join(entries[:5]) or 'nothing'}: it must hold that one file only"
        )
    return target, None


def _download(tracking_uri: str, version: Any, folder: Path) -> tuple[Path, Path]:
    mlflow = _mlflow()
    try:
        model_dir = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=str(version.source),
                dst_path=str(folder),
                tracking_uri=tracking_uri,
            )
        )
        gate_dir = Path(
            mlflow.artifacts.download_artifacts(
                run_id=str(version.run_id),
                artifact_path=GATE_ARTIFACTS,
                dst_path=str(folder),
                tracking_uri=tracking_uri,
            )
        )
    except Exception as exc:  # MlflowException, OSError
        raise BadInputError(
            f"cannot download models:/{version.name}/{version.version}: {_first_line(exc)}"
        ) from None
    return model_dir, gate_dir
