"""``purpose_consistency``: whether the examples match the stated purpose and each other."""

from __future__ import annotations

from typing import Any

from ftguard.review._evidence import DatasetFinding, Finding
from ftguard.review._example import Example
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner

__all__ = ["PurposeConsistencyScanner"]

K = 8


@scanner("purpose_consistency")
class PurposeConsistencyScanner:
    """Off-purpose clusters, by MiniLM similarity to the stated purpose.

    The request embeddings are clustered on the fly (mini-batch k-means, 8 centroids,
    fixed memory). A cluster of at least 1% of the examples whose mean similarity to the
    purpose is 0.15 below the dataset's is an off-purpose cluster (medium, with its
    examples); a dataset whose mean similarity is under 0.1 does not match its purpose
    (medium). Without a purpose only the clusters' sizes are reported (info).
    """

    name = "purpose_consistency"
    version = "1"
    uses_embeddings = True

    def __init__(self) -> None:
        self._purpose: Any = None
        self._centroids: Any = None
        self._counts: Any = None
        self._sim_sum: Any = None
        self._examples: list[list[tuple[float, int]]] = [[] for _ in range(K)]
        self._n = 0
        self._total_sim = 0.0

    def features(self, example: Example) -> None:
        return None

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        import numpy as np

        if not examples:
            return
        emb = np.asarray(ctx.request_embeddings(), dtype=np.float32)
        if self._purpose is None and ctx.run.purpose:
            from ftguard.embeddings import embed

            self._purpose = embed([ctx.run.purpose])[0]
        sims = (
            emb @ self._purpose
            if self._purpose is not None
            else np.zeros(len(examples), dtype=np.float32)
        )
        if self._centroids is None:
            k = min(K, len(examples))
            pick = np.linspace(0, len(examples) - 1, k).astype(int)
            self._centroids = emb[pick].copy()
            self._counts = np.zeros(k)
            self._sim_sum = np.zeros(k)
            self._examples = [[] for _ in range(k)]
        assign = np.argmax(emb @ self._centroids.T, axis=1)
        for c in range(len(self._centroids)):
            mask = assign == c
            m = int(mask.sum())
            if not m:
                continue
            self._counts[c] += m
            self._sim_sum[c] += float(sims[mask].sum())
            rate = m / self._counts[c]
            self._centroids[c] = (1 - rate) * self._centroids[c] + rate * emb[mask].mean(axis=0)
            keep = self._examples[c]
            keep.extend(
                (float(s), ex.index)
                for s, ex in zip(sims[mask], np.asarray(examples, dtype=object)[mask], strict=True)
            )
            keep.sort()
            del keep[10:]
        self._n += len(examples)
        self._total_sim += float(sims.sum())

    def finish(self, ctx: RunContext) -> DatasetResult:
        result = DatasetResult()
        if not self._n or self._counts is None:
            return result
        sizes = [int(c) for c in self._counts]
        if self._purpose is None:
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="info",
                    reason="no purpose was stated; clusters only",
                    details={"cluster_sizes": sizes},
                )
            )
            return result
        mean = self._total_sim / self._n
        means = [
            float(s / c) if c else 0.0 for s, c in zip(self._sim_sum, self._counts, strict=True)
        ]
        details = {
            "mean_similarity": round(mean, 4),
            "cluster_sizes": sizes,
            "cluster_similarity": [round(m, 4) for m in means],
        }
        if mean < 0.1:
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="medium",
                    count=self._n,
                    details=details,
                    reason=f"the dataset does not match its stated purpose (mean similarity {mean:.2f})",
                )
            )
        for c, (size, m) in enumerate(zip(sizes, means, strict=True)):
            if size >= max(2, 0.01 * self._n) and m < mean - 0.15 and size < 0.5 * self._n:
                result.findings.append(
                    DatasetFinding(
                        scanner=self.name,
                        severity="medium",
                        count=size,
                        reason=f"off-purpose cluster of {size} examples (similarity to the purpose {m:.2f} vs {mean:.2f} overall)",
                        examples=[i for _, i in self._examples[c]],
                        details={"cluster": c},
                    )
                )
        if not result.findings:
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="info",
                    details=details,
                    reason=f"examples match the stated purpose (mean similarity {mean:.2f})",
                )
            )
        return result
