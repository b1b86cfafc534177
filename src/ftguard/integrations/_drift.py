"""``DriftMonitor``: a transformers ``TrainerCallback`` measuring weight drift during training.

Every N optimizer steps it measures how far the trainable parameters moved from their
values at the start of training: for a LoRA module, dW = s·B·A - s·B₀·A₀ in factored form
(cheap: QR of the stacked factors, an r×r SVD), relative to the frozen base weight's norm;
for other trainable parameters, ||θ - θ₀|| / ||θ₀||. Each measurement is appended as one
JSON line to the evidence file; when a policy limit is crossed, training is stopped
(``control.should_training_stop``) and the reason recorded.

Importing this module does not import torch or transformers: the callback class is built on
first instantiation.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ftguard.policy import WeightsPolicy
from ftguard.weights import LoraPair, factored_svd

__all__ = ["DriftMonitor", "policy_from_file"]


def policy_from_file(path: str | Path | None) -> WeightsPolicy:
    """The ``weights:`` section of a workspace policy YAML (defaults when no path)."""
    from ftguard.policy import load_policy_section

    return load_policy_section(path or None, "weights")


def _np(t: Any) -> np.ndarray:
    return t.detach().float().cpu().numpy()  # type: ignore[no-any-return]


class _LoraSnap:
    def __init__(self, name: str, a: Any, b: Any, scale: float, base_sq: float) -> None:
        self.name, self.a, self.b, self.scale, self.base_sq = name, a, b, scale, base_sq
        self.a0, self.b0 = _np(a).copy(), _np(b).copy()  # .numpy() shares memory

    def drift_sq(self) -> float:
        a, b = _np(self.a), _np(self.b)
        if not np.any(self.b0) or not np.any(self.a0):
            left, right = b, a
        else:
            left, right = np.concatenate([b, -self.b0], 1), np.concatenate([a, self.a0], 0)
        pair = LoraPair("", left, right, self.scale, a.shape[0])
        return float((factored_svd(pair) ** 2).sum())


class DriftMonitor:
    """Measure parameter drift every N steps; stop training when a policy limit is crossed.

    Args:
        policy: Limits (``max_drift_relative``, ``max_drift_norm``); default ``WeightsPolicy()``.
        every_n_steps: Measure after every this many optimizer steps (and at the end).
        evidence_path: JSONL file that gets one record per measurement (appended).
        job: The job id written into each record.

    Attributes:
        records: The measurements so far (dicts, as written to the evidence file).
        stop_reason: Why training was stopped, or ``None``.

    """

    def __new__(cls, *args: Any, **kwargs: Any) -> DriftMonitor:
        impl = _impl() if cls is DriftMonitor else cls
        return object.__new__(impl)

    def __init__(
        self,
        policy: WeightsPolicy | None = None,
        every_n_steps: int = 10,
        evidence_path: Path | None = None,
        *,
        job: str | None = None,
    ) -> None:
        self.policy = policy or WeightsPolicy()
        self.every_n_steps = max(1, int(every_n_steps))
        self.evidence_path = Path(evidence_path) if evidence_path else None
        self.job = job
        self.records: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self._lora: list[_LoraSnap] = []
        self._full: list[tuple[str, Any, np.ndarray, float]] = []
        self._last_step = -1

    @classmethod
    def from_env(cls) -> DriftMonitor:
        """Configure from ``FTGUARD_JOB``, ``FTGUARD_DRIFT_LOG`` and ``FTGUARD_POLICY``."""
        log = os.environ.get("FTGUARD_DRIFT_LOG")
        return DriftMonitor(
            policy_from_file(os.environ.get("FTGUARD_POLICY")),
            evidence_path=Path(log) if log else None,
            job=os.environ.get("FTGUARD_JOB"),
        )

    # -- measurement ---------------------------------------------------------------------
    def snapshot(self, model: Any) -> None:
        """Record the starting values of the trainable parameters of ``model``."""
        self._lora, self._full = [], []
        covered: set[int] = set()
        for mname, mod in model.named_modules():
            la, lb = getattr(mod, "lora_A", None), getattr(mod, "lora_B", None)
            if la is None or lb is None or not hasattr(la, "keys"):
                continue
            base = mod.get_base_layer() if hasattr(mod, "get_base_layer") else None
            w = getattr(base, "weight", None)
            base_sq = (
                float(_np(w).astype(np.float64).ravel() @ _np(w).astype(np.float64).ravel())
                if w is not None
                else 0.0
            )
            for key in la:
                a, b = la[key].weight, lb[key].weight
                if not (a.requires_grad or b.requires_grad):
                    continue
                scale = float(mod.scaling[key]) if hasattr(mod, "scaling") else 1.0
                self._lora.append(_LoraSnap(mname, a, b, scale, base_sq))
                covered |= {id(a), id(b)}
        for pname, p in model.named_parameters():
            if p.requires_grad and id(p) not in covered:
                v0 = _np(p).copy()
                self._full.append((pname, p, v0, float(np.dot(v0.ravel(), v0.ravel()))))

    def measure(self, step: int) -> dict[str, Any]:
        """Measure drift now, append the record, and decide whether to stop."""
        parts: list[tuple[str, float, float]] = []  # (name, drift², base²)
        for s in self._lora:
            parts.append((s.name, s.drift_sq(), s.base_sq))
        for name, p, v0, n0 in self._full:
            d = _np(p) - v0
            parts.append((name, float(np.dot(d.ravel(), d.ravel())), n0))
        drift_sq = sum(p[1] for p in parts)
        base_sq = sum(p[2] for p in parts)
        rels = [(n, math.sqrt(d / b)) for n, d, b in parts if b > 0]
        worst = max(rels, key=lambda x: x[1], default=("", 0.0))
        rec: dict[str, Any] = {
            "kind": "weights.drift",
            "job": self.job,
            "step": step,
            "time": time.time(),
            "parameters": len(parts),
            "drift_norm": math.sqrt(drift_sq),
            "relative_drift": math.sqrt(drift_sq / base_sq) if base_sq > 0 else 0.0,
            "max_relative_drift": worst[1],
            "max_module": worst[0],
            "top": [{"name": n, "relative": r} for n, r in sorted(rels, key=lambda x: -x[1])[:5]],
            "stopped": False,
            "reason": None,
        }
        pol = self.policy
        reason = None
        if worst[1] > pol.max_drift_relative:
            reason = (
                f"{worst[0]} drifted {worst[1]:.3g} of its norm from the start of training "
                f"(limit {pol.max_drift_relative:g})"
            )
        elif pol.max_drift_norm is not None and rec["drift_norm"] > pol.max_drift_norm:
            reason = (
                f"the trainable parameters drifted {rec['drift_norm']:.3g} from the start of "
                f"training (limit {pol.max_drift_norm:g})"
            )
        if reason is not None:
            rec["stopped"], rec["reason"] = True, reason
            self.stop_reason = self.stop_reason or reason
        self.records.append(rec)
        if self.evidence_path is not None:
            self.evidence_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.evidence_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rec) + "\n")
        self._last_step = step
        return rec

    # -- TrainerCallback events ------------------------------------------------------------
    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> Any:
        if model is not None:
            self.snapshot(model)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        step = int(getattr(state, "global_step", 0))
        due = (self._lora or self._full) and step % self.every_n_steps == 0
        if due and self.measure(step)["stopped"]:
            control.should_training_stop = True
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        step = int(getattr(state, "global_step", 0))
        if (self._lora or self._full) and step != self._last_step:
            self.measure(step)
        return control


@cache
def _impl() -> type:
    try:
        from transformers import TrainerCallback
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from ftguard.errors import MissingDependencyError

        raise MissingDependencyError("transformers", "ml") from exc
    return type("DriftMonitor", (DriftMonitor, TrainerCallback), {"__module__": __name__})
