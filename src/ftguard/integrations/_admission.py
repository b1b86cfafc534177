"""Admission at serving time: allow or deny a model, with reasons, over the gate's own check.

:func:`check_model` is the library call (the team server's ``POST /api/v1/verify`` and the
Kubernetes webhook both use it): it runs :func:`ftguard.gate.check_deployment` and turns its
report into a decision, never raising for a model that does not verify.

:func:`review_admission` answers a Kubernetes ``AdmissionReview`` (``admission.k8s.io/v1``)
for a Pod or a KServe ``InferenceService`` that names its model with annotations:

- ``ftguard.dev/model-uri``: the model folder or file as the webhook sees it (an absolute
  path or ``file://`` URL under one of the webhook's ``--model-root`` folders, for example a
  read-only volume both mount), or ``models:/NAME@ALIAS`` (an MLflow registered version;
  its attestation is the one stored with it);
- ``ftguard.dev/attestation``: the attestation file (path or ``file://`` URL under a model
  root); required for a path model;
- ``ftguard.dev/model-signature``: the model signature (default: ``model.sig`` beside the
  attestation);
- ``ftguard.dev/base-model``: for a LoRA adapter, the base model folder it is served on
  (under a model root); required for an adapter, whose base must be the approved one.

An object without ``ftguard.dev/model-uri`` is denied unless the webhook runs with
``--unannotated allow``. :func:`make_admission_server` serves the webhook over HTTPS.
"""

from __future__ import annotations

import json
import logging
import ssl
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ftguard.attest import PublicKey
from ftguard.errors import BadInputError, FtguardError
from ftguard.gate import CheckResult, DeploymentReport, Revocations, check_deployment
from ftguard.integrations._workload import workload_problem

__all__ = [
    "ANNOTATION_ATTESTATION",
    "ANNOTATION_BASE_MODEL",
    "ANNOTATION_MODEL_SIGNATURE",
    "ANNOTATION_MODEL_URI",
    "AdmissionConfig",
    "AdmissionDecision",
    "check_model",
    "make_admission_server",
    "review_admission",
]

ANNOTATION_MODEL_URI = "ftguard.dev/model-uri"
ANNOTATION_ATTESTATION = "ftguard.dev/attestation"
ANNOTATION_MODEL_SIGNATURE = "ftguard.dev/model-signature"
ANNOTATION_BASE_MODEL = "ftguard.dev/base-model"
ADMISSION_API = "admission.k8s.io/v1"
SUPPORTED_KINDS = {("", "Pod"), ("serving.kserve.io", "InferenceService")}
MAX_REVIEW_BYTES = 8 << 20
_log = logging.getLogger("ftguard.admission")


class AdmissionDecision(BaseModel):
    """Allow or deny a model, with the reasons (each failed check's detail)."""

    allowed: bool
    reasons: list[str] = Field(default_factory=list)
    model: str | None = None
    job_id: str | None = None
    """The job whose attestation the model matched (allowed only)."""
    digest: str | None = None
    """The model's sha256 root digest (allowed only)."""
    checks: dict[str, CheckResult] = Field(default_factory=dict)


def _decision(report: DeploymentReport, model: str) -> AdmissionDecision:
    verified = report.verification if report.ok else None
    return AdmissionDecision(
        allowed=report.ok,
        reasons=list(report.reasons),
        model=model,
        job_id=verified.job_id if verified else None,
        digest=verified.digest if verified else None,
        checks=dict(report.checks),
    )


def check_model(
    model_path: str | Path,
    attestation: str | Path,
    trusted_key: str | Path | PublicKey,
    *,
    witness_heads: list[tuple[int, str]] | None = None,
    model_signature: str | Path | None = None,
    model_signing_key: str | Path | None = None,
    base_model: str | Path | None = None,
    revocations: Revocations | None = None,
) -> AdmissionDecision:
    """Whether a model may be served: the gate's deployment check, as allow or deny.

    The arguments are those of :func:`ftguard.gate.check_deployment`. A file that cannot be
    read is a denial (its reason says which), not an error. A LoRA adapter's base is checked
    only as ``base_model`` names it: the folder its own config names may lie outside what
    the caller may read.
    """
    try:
        report = check_deployment(
            model_path,
            attestation,
            trusted_key,
            witness_heads=witness_heads,
            model_signature=model_signature,
            model_signing_key=model_signing_key,
            base_model=base_model,
            follow_adapter_config=False,
            revocations=revocations,
        )
    except FtguardError as exc:
        return AdmissionDecision(allowed=False, reasons=[exc.message], model=str(model_path))
    return _decision(report, str(model_path))


@dataclass(frozen=True)
class AdmissionConfig:
    """What the admission webhook trusts and allows.

    Attributes:
        trusted_key: The workspace's attestation public key.
        model_roots: Folders a model or attestation path must lie in (the webhook reads
            nothing else).
        unannotated: ``deny`` (default) or ``allow`` objects without a model annotation.
        witness: A witness URI (``file:PATH``); the decision's audit head must be in it.
        mlflow_tracking_uri: The MLflow tracking server for ``models:/`` URIs.
        model_signing_key: The published model-signing public key, when pinned.
        storage_map: Where the webhook sees each storage URI prefix a spec may name.
        revocations: The signed revocation list (``ftguard revocations --out FILE``).

    """

    trusted_key: PublicKey
    model_roots: tuple[Path, ...] = ()
    unannotated: Literal["allow", "deny"] = "deny"
    witness: str | None = None
    mlflow_tracking_uri: str | None = None
    model_signing_key: Path | None = None
    revocations: Path | None = None
    """The workspace's signed revocation list, read afresh for every review."""
    storage_map: tuple[tuple[str, Path], ...] = ()
    """``(URI prefix, folder)`` pairs: where the webhook sees what an InferenceService's
    ``storageUri`` names (``pvc://NAMESPACE/CLAIM/`` -> ``/mnt/models``)."""

    def revoked(self) -> Revocations | None:
        """The revocation list, read and verified afresh (None without one)."""
        if self.revocations is None:
            return None
        from ftguard.gate import read_revocations

        return read_revocations(self.revocations, self.trusted_key)

    def witness_heads(self) -> list[tuple[int, str]] | None:
        """The witness's heads, read afresh (None without a witness)."""
        if self.witness is None:
            return None
        from ftguard.control import open_witness

        return [(h.seq, h.hash) for h in open_witness(self.witness).heads()]


def _request_of(review: Any) -> dict[str, Any]:
    """The ``request`` of an AdmissionReview v1.

    Raises:
        BadInputError: Not an AdmissionReview v1 with a request and its uid.

    """
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise BadInputError("not an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_API:
        raise BadInputError(f"only {ADMISSION_API} AdmissionReviews are answered")
    request = review.get("request")
    if not isinstance(request, dict):
        raise BadInputError("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > 128:
        raise BadInputError("the AdmissionReview's request has no uid")
    return request


def _annotations(request: dict[str, Any]) -> tuple[str, dict[str, str]]:
    obj = request.get("object")
    if not isinstance(obj, dict):
        raise BadInputError("the request carries no object")
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise BadInputError("the object has no metadata")
    annotations = metadata.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise BadInputError("the object's annotations are not a map of strings")
    name = metadata.get("name") or metadata.get("generateName") or request.get("name") or "?"
    namespace = request.get("namespace") or metadata.get("namespace") or ""
    label = f"{namespace}/{name}" if namespace else str(name)
    return label, annotations


def _local(uri: str, roots: tuple[Path, ...], what: str) -> Path:
    """A path annotation, resolved, inside one of the model roots.

    Raises:
        BadInputError: Not an absolute path or ``file://`` URL, or missing.
        PermissionDeniedError: Outside every model root.

    """
    from ftguard.errors import PermissionDeniedError

    text = uri.removeprefix("file://") if uri.startswith("file://") else uri
    if "://" in text or ":/" in text.split("/")[0]:
        raise BadInputError(
            f"{what} {uri!r}: use a path the webhook can read (mount the volume) or models:/"
        )
    path = Path(text)
    if not path.is_absolute():
        raise BadInputError(f"{what} {uri!r} is not an absolute path")
    if not roots:
        raise PermissionDeniedError("the webhook has no --model-root: it reads no model files")
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise BadInputError(f"{what} {uri} does not exist where the webhook looks") from None
    for root in roots:
        base = root.resolve()
        if resolved == base or base in resolved.parents:
            return resolved
    raise PermissionDeniedError(f"{what} {uri} is outside the webhook's model roots")


def _check_annotated(
    annotations: dict[str, str],
    config: AdmissionConfig,
    kind: str,
    spec: dict[str, Any],
    namespace: str,
) -> AdmissionDecision:
    decision, model, base = _check_annotations(annotations, config)
    if not decision.allowed:
        return decision
    checked_base = decision.checks.get("base_model")
    if checked_base is None or not checked_base.ok or checked_base.detail.startswith("not needed"):
        base = None  # a full model's base annotation was never checked: the spec may not load it
    uri = annotations[ANNOTATION_MODEL_URI].strip()
    problem = workload_problem(
        kind,
        spec,
        model,
        base,
        dict(config.storage_map),
        alias=uri if uri.startswith("models:/") else None,
        namespace=namespace,
    )
    if problem is None:
        return decision
    return decision.model_copy(update={"allowed": False, "reasons": [problem]})


def _check_annotations(
    annotations: dict[str, str], config: AdmissionConfig
) -> tuple[AdmissionDecision, Path | None, Path | None]:
    """The annotated model's decision, the model's folder and its base, as the webhook sees them.

    A registered MLflow version has no folder here: a spec must name its URI.
    """
    uri = annotations[ANNOTATION_MODEL_URI].strip()
    base = annotations.get(ANNOTATION_BASE_MODEL)
    base_model = _local(base, config.model_roots, "base model") if base else None
    if uri.startswith("models:/"):
        from ftguard.integrations._mlflow import verify_registered_model

        found = verify_registered_model(
            uri,
            config.trusted_key,
            tracking_uri=config.mlflow_tracking_uri,
            witness_heads=config.witness_heads(),
            model_signing_key=config.model_signing_key,
            base_model=base_model,
            follow_adapter_config=False,
            revocations=config.revoked(),
        )
        return _decision(found.report, uri), None, base_model
    model = _local(uri, config.model_roots, "model")
    reference = annotations.get(ANNOTATION_ATTESTATION, "").strip()
    if not reference:
        return (
            AdmissionDecision(
                allowed=False,
                model=uri,
                reasons=[
                    f"missing attestation: the object has no {ANNOTATION_ATTESTATION} annotation"
                ],
            ),
            None,
            None,
        )
    attestation = _local(reference, config.model_roots, "attestation")
    signature = annotations.get(ANNOTATION_MODEL_SIGNATURE)
    decision = check_model(
        model,
        attestation,
        config.trusted_key,
        witness_heads=config.witness_heads(),
        model_signature=_local(signature, config.model_roots, "model signature")
        if signature
        else None,
        model_signing_key=config.model_signing_key,
        base_model=base_model,
        revocations=config.revoked(),
    )
    return decision, model, base_model


def _decide(request: dict[str, Any], config: AdmissionConfig) -> tuple[bool, str]:
    if request.get("operation") in ("DELETE", "CONNECT"):
        return True, "ftguard: nothing is loaded on delete or connect"
    found = request.get("kind")
    kind: dict[str, Any] = found if isinstance(found, dict) else {}
    group_kind = (str(kind.get("group") or ""), str(kind.get("kind") or ""))
    if group_kind not in SUPPORTED_KINDS:
        return False, (
            f"ftguard: admits Pods and KServe InferenceServices, not {group_kind[1] or '?'}"
            f"{' (' + group_kind[0] + ')' if group_kind[0] else ''}"
        )
    try:
        label, annotations = _annotations(request)
    except BadInputError as exc:
        return False, f"ftguard: denied: {exc.message}"
    if ANNOTATION_MODEL_URI not in annotations:
        allowed = config.unannotated == "allow"
        verdict = "allowed" if allowed else "denied"
        return allowed, (
            f"ftguard: {verdict} {label}: it has no {ANNOTATION_MODEL_URI} annotation "
            f"(unannotated objects are {verdict} by this webhook's policy)"
        )
    obj = request.get("object")
    found_spec = obj.get("spec") if isinstance(obj, dict) else None
    spec: dict[str, Any] = found_spec if isinstance(found_spec, dict) else {}
    try:
        namespace = str(request.get("namespace") or "")  # the API server's, not the object's
        decision = _check_annotated(annotations, config, group_kind[1], spec, namespace)
    except FtguardError as exc:
        return False, f"ftguard: denied {label}: {exc.message}"
    if decision.allowed:
        return True, (
            f"ftguard: {label} serves the model job {decision.job_id} passed the gate with "
            f"(sha256:{str(decision.digest)[:16]})"
        )
    return False, f"ftguard: denied {label}: {'; '.join(decision.reasons)}"


def review_admission(review: Any, config: AdmissionConfig) -> dict[str, Any]:
    """The AdmissionReview answer (uid echoed, ``allowed``, ``status.message``).

    Raises:
        BadInputError: ``review`` is not an AdmissionReview v1 with a request uid (there is
            nothing to answer; the webhook answers HTTP 400).

    """
    request = _request_of(review)
    try:
        allowed, message = _decide(request, config)
    except Exception as exc:  # fail closed, whatever went wrong
        _log.exception("admission review %s failed", request["uid"])
        allowed, message = False, f"ftguard: denied: internal error ({type(exc).__name__})"
    _log.info("admission %s: %s: %s", request["uid"], "allow" if allowed else "deny", message)
    return {
        "apiVersion": ADMISSION_API,
        "kind": "AdmissionReview",
        "response": {
            "uid": request["uid"],
            "allowed": allowed,
            "status": {"code": 200 if allowed else 403, "message": message},
        },
    }


class _AdmissionServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: AdmissionConfig) -> None:
        super().__init__(address, _Handler)
        self.config = config


class _Handler(BaseHTTPRequestHandler):
    server: _AdmissionServer
    protocol_version = "HTTP/1.1"
    timeout = 60

    def _send(self, code: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] in ("/healthz", "/readyz"):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] not in ("/validate", "/"):
            self._send(404, {"error": "post AdmissionReviews to /validate"})
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._send(411, {"error": "a Content-Length is required"})
            return
        if length < 0 or length > MAX_REVIEW_BYTES:
            self._send(413, {"error": f"an AdmissionReview is at most {MAX_REVIEW_BYTES} bytes"})
            return
        raw = self.rfile.read(length)
        try:
            answer = review_admission(json.loads(raw), self.server.config)
        except (ValueError, RecursionError):
            self._send(400, {"error": "the body is not JSON"})
            return
        except BadInputError as exc:
            self._send(400, {"error": exc.message})
            return
        self._send(200, answer)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        _log.debug("%s " + format, self.address_string(), *args)


def make_admission_server(
    config: AdmissionConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> ThreadingHTTPServer:
    """The webhook's HTTP server (``serve_forever`` it): HTTPS when given a certificate.

    Kubernetes calls webhooks over HTTPS only; plain HTTP is for a TLS-terminating proxy in
    front, or for trying it out.

    Raises:
        BadInputError: Only one of certificate and key, or they cannot be loaded.

    """
    if (tls_cert is None) != (tls_key is None):
        raise BadInputError("give both --tls-cert and --tls-key (or neither)")
    try:
        server = _AdmissionServer((host, port), config)
    except OSError as exc:
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if tls_cert is not None and tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(str(tls_cert), str(tls_key))
        except (OSError, ssl.SSLError) as exc:
            server.server_close()
            raise BadInputError(f"cannot load the TLS certificate and key: {exc}") from None
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server
