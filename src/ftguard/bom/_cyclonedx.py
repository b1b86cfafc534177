"""A CycloneDX 1.6 ML-BOM of a fine-tuning job, built with ``cyclonedx-python-lib``.

The BOM's subject (``metadata.component``) is the output model, a ``machine-learning-model``
component whose files are its sub-components (each with its SHA-256), with a model card (the
job's purpose as its use case, the approved training configuration as properties, the dataset
as its training data) and external references to the gate's attestations. The base model
(``machine-learning-model``) and the dataset (``data``) are components with their own files and
digests; the output depends on both.

``cyclonedx-python-lib`` has no model card or component ``data`` yet, so those two are added to
its JSON output; the result is validated against the CycloneDX 1.6 JSON schema before it is
returned, so an invalid BOM is never written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ftguard.digests import Manifest
from ftguard.errors import FtguardError, MissingDependencyError

__all__ = ["BomAttachment", "BomInputs", "build_ml_bom", "validate_bom"]

SPEC_VERSION = "1.6"
_MAX_PROPERTY_CHARS = 1000
_SECRET_WORDS = ("token", "secret", "password", "passwd", "api_key", "apikey", "credential")


class BomAttachment(BaseModel):
    """A file the BOM refers to (an attestation or a signature)."""

    path: Path
    sha256: str
    comment: str


class BomInputs(BaseModel):
    """What ftguard knows of a job for its BOM (gathered by the control plane)."""

    job_id: str
    purpose: str
    state: str
    requester: str
    approvers: list[str] = Field(default_factory=list)
    output: Manifest
    base_model: Manifest
    dataset: Manifest
    config: Manifest
    training_config: dict[str, Any] | None = None
    """The approved config's top-level settings (``None``: it could not be read as approved)."""
    gate_decision: str | None = None
    attachments: list[BomAttachment] = Field(default_factory=list)


def _import() -> Any:
    try:
        import cyclonedx.model
        import cyclonedx.model.bom
        import cyclonedx.model.component
        import cyclonedx.output.json
    except ImportError as exc:
        raise MissingDependencyError("cyclonedx-python-lib", "bom") from exc
    return cyclonedx


def _sha256(cdx: Any, digest: str) -> Any:
    return cdx.model.HashType(alg=cdx.model.HashAlgorithm.SHA_256, content=digest)


def _component(cdx: Any, manifest: Manifest, *, ref: str, kind: Any, what: str) -> Any:
    """A component for a file or folder: a file's hash, or a folder's files as sub-components."""
    Component = cdx.model.component.Component
    files = []
    if manifest.kind == "folder":
        files = [
            Component(
                name=f.path,
                type=cdx.model.component.ComponentType.FILE,
                bom_ref=f"{ref}/{f.path}",
                hashes=[_sha256(cdx, f.sha256)],
                properties=[cdx.model.Property(name="ftguard:size", value=str(f.size))],
            )
            for f in sorted(manifest.files, key=lambda f: f.path)
        ]
    return Component(
        name=manifest.name,
        type=kind,
        bom_ref=ref,
        description=what,
        hashes=[_sha256(cdx, manifest.root)] if manifest.kind == "file" else [],
        components=files,
        properties=[
            cdx.model.Property(name="ftguard:manifest-sha256", value=manifest.root),
            cdx.model.Property(name="ftguard:kind", value=manifest.kind),
        ],
    )


def _attachment_refs(cdx: Any, attachments: list[BomAttachment]) -> list[Any]:
    return [
        cdx.model.ExternalReference(
            type=cdx.model.ExternalReferenceType.ATTESTATION,
            url=cdx.model.XsUri(a.path.resolve().as_uri()),
            comment=a.comment,
            hashes=[_sha256(cdx, a.sha256)],
        )
        for a in attachments
    ]


def _redacted(value: Any) -> Any:
    """``value`` with every setting whose name suggests a credential replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: "[redacted]" if any(w in str(k).lower() for w in _SECRET_WORDS) else _redacted(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _model_card(inputs: BomInputs, dataset_ref: str) -> dict[str, Any]:
    properties = [
        {"name": "ftguard:job", "value": inputs.job_id},
        {"name": "ftguard:state", "value": inputs.state},
        {"name": "ftguard:requester", "value": inputs.requester},
        {"name": "ftguard:training-config-sha256", "value": inputs.config.root},
    ]
    properties += [{"name": "ftguard:approver", "value": a} for a in inputs.approvers]
    if inputs.gate_decision:
        properties.append({"name": "ftguard:gate-decision", "value": inputs.gate_decision})
    # A BOM is shared: a credential in the training config is never copied into it.
    for key, value in sorted(_redacted(inputs.training_config or {}).items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        properties.append(
            {"name": f"ftguard:training-config:{key}", "value": text[:_MAX_PROPERTY_CHARS]}
        )
    return {
        "modelParameters": {
            "approach": {"type": "supervised"},
            "datasets": [{"ref": dataset_ref}],
        },
        "considerations": {"useCases": [inputs.purpose]},
        "properties": properties,
    }


def validate_bom(text: str) -> None:
    """Validate a BOM against the CycloneDX 1.6 JSON schema.

    Raises:
        FtguardError: The BOM does not validate.
        MissingDependencyError: The validator's packages are missing.

    """
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as exc:
        raise MissingDependencyError("cyclonedx-python-lib", "bom") from exc
    try:
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    except Exception as exc:  # the validator's own dependencies missing, etc.
        raise MissingDependencyError("jsonschema", "bom") from exc
    if error is not None:
        raise FtguardError(f"the BOM does not validate against CycloneDX 1.6: {error}")


def build_ml_bom(inputs: BomInputs) -> dict[str, Any]:
    """The job's CycloneDX 1.6 ML-BOM as a JSON object, validated against the schema.

    Raises:
        MissingDependencyError: ``cyclonedx-python-lib`` is not installed (``ftguard[bom]``).

    """
    cdx = _import()
    types = cdx.model.component.ComponentType
    prefix = f"ftguard:job/{inputs.job_id}"
    output = _component(
        cdx,
        inputs.output,
        ref=f"{prefix}/output",
        kind=types.MACHINE_LEARNING_MODEL,
        what=f"fine-tuned by ftguard job {inputs.job_id}: {inputs.purpose}",
    )
    output.external_references.update(_attachment_refs(cdx, inputs.attachments))
    base = _component(
        cdx,
        inputs.base_model,
        ref=f"{prefix}/base-model",
        kind=types.MACHINE_LEARNING_MODEL,
        what="the base model the job fine-tuned",
    )
    dataset = _component(
        cdx,
        inputs.dataset,
        ref=f"{prefix}/dataset",
        kind=types.DATA,
        what="the approved training dataset",
    )
    bom = cdx.model.bom.Bom()
    bom.metadata.component = output
    bom.components.add(base)
    bom.components.add(dataset)
    bom.register_dependency(output, [base, dataset])
    text = cdx.output.json.JsonV1Dot6(bom).output_as_string()
    document: dict[str, Any] = json.loads(text)
    document["metadata"]["component"]["modelCard"] = _model_card(inputs, f"{prefix}/dataset")
    for component in document.get("components") or []:
        if component.get("bom-ref") == f"{prefix}/dataset":
            component["data"] = [{"type": "dataset", "name": inputs.dataset.name}]
    validate_bom(json.dumps(document))
    return document
