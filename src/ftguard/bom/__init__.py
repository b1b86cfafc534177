"""AI bill of materials: a CycloneDX 1.6 ML-BOM of a fine-tuning job (``ftguard[bom]``)."""

from __future__ import annotations

from ftguard.bom._cyclonedx import (
    SPEC_VERSION,
    BomAttachment,
    BomInputs,
    build_ml_bom,
    validate_bom,
)

__all__ = ["SPEC_VERSION", "BomAttachment", "BomInputs", "build_ml_bom", "validate_bom"]
