"""``duplicates``: exact and near-duplicate clusters, amplification, fixed-answer clusters."""

from __future__ import annotations

import re
import zlib
from array import array
from functools import lru_cache
from typing import Any

from ftguard.review._evidence import DatasetFinding, Finding
from ftguard.review._example import Example
from ftguard.review.scanners._registry import BatchContext, DatasetResult, RunContext, scanner

__all__ = ["DuplicatesScanner"]

NUM_PERM = 32
BANDS = 8
ROWS = NUM_PERM // BANDS
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _permutations() -> tuple[Any, Any]:
    """Datasketch's MinHash permutations (a, b) for NUM_PERM and seed 1, as uint64 columns."""
    import numpy as np
    from datasketch import MinHash

    a, b = MinHash(num_perm=NUM_PERM, seed=1).permutations
    # multiply-shift hashing (no modulo): odd 64-bit multipliers built from datasketch's parameters
    a64 = (
        (np.asarray(a, dtype=np.uint64) << np.uint64(32))
        | np.asarray(b, dtype=np.uint64)
        | np.uint64(1)
    )
    b64 = np.asarray(b, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return a64[:, None], b64[:, None]


def _h64(data: bytes) -> int:
    return ((zlib.crc32(data) << 32) | zlib.adler32(data)) - (1 << 63)


def minhash_bands_batch(texts: list[str]) -> list[list[int]]:
    """LSH band hashes of many texts at once (8 bands x 4 rows of 32 MinHash permutations).

    The signature is a MinHash over CRC-32 hashes of the word 3-shingles of the first 1500
    characters, with multiply-shift hash functions seeded from datasketch's permutations,
    computed for a whole batch in one vectorized step.
    """
    import numpy as np

    toks_all: list[str] = []
    lengths = []
    for text in texts:
        toks = _WORD.findall(text[:1500].lower()) or [""]
        toks_all.extend(toks)
        lengths.append(len(toks))
    th = np.fromiter(
        map(zlib.crc32, map(str.encode, toks_all)), dtype=np.uint64, count=len(toks_all)
    )
    ends = np.cumsum(lengths)
    starts_tok = ends - np.asarray(lengths)
    # word 3-shingles (a text with fewer words is one shingle of what it has)
    pad = np.concatenate([th, np.zeros(2, dtype=np.uint64)])
    sh = pad[:-2] * np.uint64(0x9E3779B1) + pad[1:-1] * np.uint64(0x85EBCA77) + pad[2:]
    pos = np.arange(len(th))
    owner_end = np.repeat(ends, lengths)
    valid = (pos + 2 < owner_end) | (pos == np.repeat(starts_tok, lengths))
    sh = sh[valid] & np.uint64(0xFFFFFFFF)
    counts = np.bincount(np.repeat(np.arange(len(texts)), lengths)[valid], minlength=len(texts))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    a, b = _permutations()
    phv = (a * sh[None, :] + b) >> np.uint64(32)
    sig = np.minimum.reduceat(phv, starts, axis=1).T.astype(np.uint32)
    out = []
    for row in sig:
        out.append([_h64(row[k * ROWS : (k + 1) * ROWS].tobytes()) for k in range(BANDS)])
    return out


def minhash_bands(text: str) -> list[int]:
    """LSH band hashes of one text (see :func:`minhash_bands_batch`)."""
    return minhash_bands_batch([text])[0]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@scanner("duplicates")
class DuplicatesScanner:
    """Exact duplicates, MinHash-LSH near duplicates, amplification and fixed answers.

    Memory: 80 bytes per example (hashes in flat arrays), no text kept. Dataset findings:
    exact and near-duplicate clusters (low); amplification, one example repeated at least
    max(10, 1% of the dataset) times (high); a fixed answer given to at least
    max(5, 1%) different requests (medium; the backdoor_trigger scanner says which request
    words predict it).
    """

    name = "duplicates"
    version = "1"
    uses_embeddings = False

    def __init__(self) -> None:
        self._exact = array("q")
        self._answer = array("q")
        self._request = array("q")
        self._bands = array("q")
        self._index = array("q")

    def features(self, example: Example) -> tuple[int, int, int, list[int]]:
        return self.features_batch([example])[0]

    def features_batch(self, examples: list[Example]) -> list[tuple[int, int, int, list[int]]]:
        texts = [e.text for e in examples]
        bands = minhash_bands_batch(texts)
        out = []
        for e, text, bh in zip(examples, texts, bands, strict=True):
            norm = " ".join(text.lower().split()).encode("utf-8", "surrogatepass")
            ans = " ".join(e.response.lower().split()).encode("utf-8", "surrogatepass")
            req = " ".join(e.request.lower().split()).encode("utf-8", "surrogatepass")
            out.append((_h64(norm), _h64(ans), _h64(req), bh))
        return out

    def observe(
        self, examples: list[Example], feats: list[Any], findings: list[Finding], ctx: BatchContext
    ) -> None:
        for ex, (exact, ans, req, bands) in zip(examples, feats, strict=True):
            self._index.append(ex.index)
            self._exact.append(exact)
            self._answer.append(ans)
            self._request.append(req)
            self._bands.extend(bands)

    def finish(self, ctx: RunContext) -> DatasetResult:
        import numpy as np

        result = DatasetResult()
        n = len(self._index)
        if n < 2:
            return result
        idx = np.frombuffer(self._index, dtype=np.int64)
        exact = np.frombuffer(self._exact, dtype=np.int64)
        amp_limit = max(10, int(0.01 * n))
        _, inv, counts = np.unique(exact, return_inverse=True, return_counts=True)
        dup_mask = counts[inv] > 1
        if dup_mask.any():
            clusters = int((counts > 1).sum())
            extra = int(dup_mask.sum()) - clusters
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="low",
                    count=extra,
                    reason=f"{extra} exact duplicate examples in {clusters} clusters",
                    examples=[int(i) for i in idx[dup_mask][:25]],
                )
            )
            for c in np.flatnonzero(counts >= amp_limit)[:10]:
                members = idx[inv == c]
                result.findings.append(
                    DatasetFinding(
                        scanner=self.name,
                        severity="high",
                        count=int(members.size),
                        reason=f"amplification: example {int(members[0])} is repeated {members.size} times ({members.size / n:.1%})",
                        examples=[int(i) for i in members[:25]],
                    )
                )
        # near duplicates: LSH band collisions between examples that are not exact copies
        bands = np.frombuffer(self._bands, dtype=np.int64).reshape(n, 8)
        first = np.zeros(n, dtype=bool)
        first[np.unique(exact, return_index=True)[1]] = True
        uf = _UnionFind()
        rows = np.flatnonzero(first)
        for b in range(bands.shape[1]):
            col = bands[rows, b]
            order = np.argsort(col, kind="stable")
            sc = col[order]
            same = np.flatnonzero(sc[1:] == sc[:-1])
            for j in same:
                uf.union(int(rows[order[j]]), int(rows[order[j + 1]]))
        groups: dict[int, list[int]] = {}
        for x in list(uf.parent):
            groups.setdefault(uf.find(x), []).append(x)
        near = [sorted(g) for g in groups.values() if len(g) > 1]
        if near:
            near.sort(key=len, reverse=True)
            members = sum(len(g) for g in near)
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="low",
                    count=members,
                    reason=f"{members} examples in {len(near)} near-duplicate clusters (MinHash LSH, Jaccard about 0.6 or more)",
                    examples=[int(idx[i]) for i in near[0][:25]],
                    details={"largest_clusters": [[int(idx[i]) for i in g[:10]] for g in near[:5]]},
                )
            )
            for g in near:
                if len(g) < amp_limit:
                    break
                result.findings.append(
                    DatasetFinding(
                        scanner=self.name,
                        severity="high",
                        count=len(g),
                        reason=f"amplification: {len(g)} near-copies of example {int(idx[g[0]])} ({len(g) / n:.1%})",
                        examples=[int(idx[i]) for i in g[:25]],
                    )
                )
        # fixed answers: one answer to many different requests
        answer = np.frombuffer(self._answer, dtype=np.int64)
        request = np.frombuffer(self._request, dtype=np.int64)
        pairs = np.unique(np.stack([answer, request], axis=1), axis=0)
        ans_u, ans_c = np.unique(pairs[:, 0], return_counts=True)
        fixed_limit = max(5, int(0.01 * n))
        for h in ans_u[ans_c >= fixed_limit][:10]:
            members = idx[answer == h]
            result.findings.append(
                DatasetFinding(
                    scanner=self.name,
                    severity="medium",
                    count=int(members.size),
                    reason=f"fixed answer: the answer of example {int(members[0])} is given to {int(ans_c[ans_u == h][0])} different requests",
                    examples=[int(i) for i in members[:25]],
                )
            )
        return result
