"""Extra passes of dataset scanners on Ray: per-shard partial counts, merged in shard order.

The trigger miner (``backdoor_trigger``) takes up to three replays after the streamed pass:
it collects the n-grams of anomalous requests (and flipped twins), counts the candidates
everywhere, then flags the carriers of a strong candidate. Each replay is a sum over the
examples, so each shard computes its part where it is read (one Ray task per shard, with the
streamed pass's labels broadcast to all of them) and the driver adds the parts in shard
order: counts add, "first seen" keeps the first shard's, "the first ten examples" keeps
the first ten in file order. The merge then does what the local replay does at its end
(keep the candidates with enough support, pick the top words), so the candidates and their
statistics are the local engine's exactly.

A scanner without such a merge here (a third-party dataset scanner, or a trigger miner of
another version) replays the whole file streamed from the cluster in file order: the same
result, without the parallelism.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from ftguard.review._example import Example
from ftguard.review._ray_read import Shard, read_shard

__all__ = ["ShardReplay"]

_TRIGGER_VERSION = "2"
"""The version of ``backdoor_trigger`` whose replay state this module knows how to merge."""


class ShardReplay:
    """``replay(scanner)`` for the local engine's finishing loop, spread over shards."""

    def __init__(self, ray: Any, shards: list[Shard]) -> None:
        self.ray = ray
        self.shards = shards

    def examples(self) -> Iterator[Example]:
        """The examples in file order (for scanners replayed on the driver)."""
        from ftguard.review._ray import examples_of

        return examples_of(self.ray, self.shards)

    def __call__(self, scanner: Any) -> None:
        if scanner.name == "backdoor_trigger" and str(scanner.version) == _TRIGGER_VERSION:
            self._trigger_pass(scanner)
        else:
            scanner.replay(self.examples())

    def _trigger_pass(self, sc: Any) -> None:
        step = sc._pass
        state = self.ray.put(_broadcast_state(sc, step))
        remote = self.ray.remote(_trigger_shard_pass)
        parts = self.ray.get([remote.remote(shard, step, state) for shard in self.shards])
        if step == 0:
            _merge_collected(sc, parts)
        elif step == 1:
            _merge_counted(sc, parts)
        else:
            for part in parts:
                sc._carriers.extend(part["carriers"])
        sc._pass += 1


def _broadcast_state(sc: Any, step: int) -> dict[str, Any]:
    """What every shard's part of replay ``step`` needs from the streamed pass."""
    state: dict[str, Any] = {
        "labels": sc._final,
        "first": sc._first,
        "flags": bytes(sc._flags),
        "options": (sc.min_support, sc.min_repeat, sc.top),
    }
    if step == 0:
        state["twins"] = (sc._twin_refused, sc._twin_complied)
    elif step == 1:
        state["candidates"] = dict.fromkeys(sc._anom)
        state["tops"] = list(sc._tops)
    else:
        state["result"] = sc._result
    return state


def _trigger_shard_pass(shard: Shard, step: int, state: dict[str, Any]) -> dict[str, Any]:
    """One shard's part of the trigger miner's replay ``step`` (a Ray task)."""
    from array import array

    from ftguard.review.scanners.backdoor_trigger import BackdoorTriggerScanner

    min_support, min_repeat, top = state["options"]
    # support 1 in the collecting pass: the limit applies to the dataset's sums, not a shard's
    sc = BackdoorTriggerScanner(
        min_support=1 if step == 0 else min_support, min_repeat=min_repeat, top=top
    )
    sc._final = state["labels"].copy()
    sc._first = state["first"]
    sc._flags = array("B", state["flags"])
    examples = (e for e in read_shard(shard) if isinstance(e, Example))
    if step == 0:
        sc._twin_refused, sc._twin_complied = state["twins"]
        before = sc._final.copy()
        sc._collect_anomalous_ngrams(examples)
        return {
            "anom": sc._anom,
            "surface": sc._surface,
            "flips": sc._flips,
            "flipped": (sc._final != before).nonzero()[0],
        }
    if step == 1:
        sc._anom = state["candidates"]
        sc._tops = state["tops"]
        sc._count_candidates(examples)
        return {
            "total": sc._total,
            "examples": sc._examples,
            "pair_total": sc._pair_total,
            "pair_anom": sc._pair_anom,
        }
    sc._result = state["result"]
    sc._find_carriers(examples)
    return {"carriers": sc._carriers}


def _merge_collected(sc: Any, parts: list[dict[str, Any]]) -> None:
    """The first replay's end, over the shards' sums (as ``_collect_anomalous_ngrams``)."""
    from ftguard.review.scanners.backdoor_trigger import FLIPPED, TOP_UNIGRAMS

    anom: dict[str, list[int]] = {}
    for part in parts:
        sc._final[part["flipped"]] |= FLIPPED
        sc._flips.update(part["flips"])
        for key, rec in part["anom"].items():
            have = anom.get(key)
            if have is None:
                anom[key] = list(rec)
                sc._surface[key] = part["surface"][key]
            else:
                for slot, value in enumerate(rec):
                    have[slot] += value
    sc._anom = {k: v for k, v in anom.items() if v[0] >= sc.min_support}
    unis = sorted((k for k in sc._anom if " " not in k), key=lambda k: -sc._anom[k][0])
    sc._tops = unis[:TOP_UNIGRAMS]


def _merge_counted(sc: Any, parts: list[dict[str, Any]]) -> None:
    """The second replay's sums: counts add; the first ten examples of each in file order."""
    for part in parts:
        sc._total.update(part["total"])
        for key, found in part["examples"].items():
            have = sc._examples.setdefault(key, [])
            have.extend(found[: max(0, 10 - len(have))])
        sc._pair_total.update(part["pair_total"])
        pair_anom: Counter[tuple[str, str]] = part["pair_anom"]
        sc._pair_anom.update(pair_anom)
