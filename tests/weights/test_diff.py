from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from ftguard.errors import BadInputError
from ftguard.weights import Fingerprint, WeightsPolicy, diff, render_weights_html

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_adapter, write_bf16_model, write_model  # noqa: E402


@pytest.fixture(scope="module")
def base_tensors() -> dict[str, np.ndarray]:
    return llama_tensors(num_layers=4, seed=0)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory, base_tensors: dict[str, np.ndarray]) -> Path:
    return write_model(tmp_path_factory.mktemp("base"), base_tensors)


def test_identical_models_pass_with_zero_change(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    same = write_model(tmp_path / "same", base_tensors, shards=3)
    r = diff(base_dir, same)
    assert r.verdict == "pass" and r.anomaly_score == 0.0 and not r.flags
    assert r.tensors_changed == 0 and r.tensors_total == len(base_tensors)
    assert all(t.diff_norm == 0 and t.cosine == pytest.approx(1.0) for t in r.tensors)
    assert r.base_digest != r.tuned_digest  # different files (sharded), same weights
    assert r.judged_by == "fixed_limits" and "fewer than the 5" in r.judgement


def test_statistics_match_numpy(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    tuned = perturb(base_tensors, 0.05, only="layers.2.mlp")
    r = diff(base_dir, write_model(tmp_path / "t", tuned, shards=2), workers=2)
    by = {t.name: t for t in r.tensors}
    for name, w in base_tensors.items():
        d = tuned[name].astype(np.float64) - w
        t = by[name]
        assert t.diff_norm == pytest.approx(np.linalg.norm(d), rel=1e-4, abs=1e-9)
        assert t.base_norm == pytest.approx(np.linalg.norm(w), rel=1e-5)
        assert t.max_abs_change == pytest.approx(np.abs(d).max(), rel=1e-4, abs=1e-9)
        assert t.changed_fraction == pytest.approx(np.mean(np.abs(d) > 1e-6), abs=1e-3)
        cos = float(np.sum(w * tuned[name]) / np.linalg.norm(w) / np.linalg.norm(tuned[name]))
        assert t.cosine == pytest.approx(cos, abs=1e-5)
    changed = {t.name for t in r.tensors if t.diff_norm > 0}
    assert changed == {n for n in base_tensors if "layers.2.mlp" in n}
    layer2 = next(g for g in r.layers if g.layer == 2)
    assert layer2.energy_share == pytest.approx(1.0)
    layer_base = np.sqrt(
        sum(np.sum(w.astype(np.float64) ** 2) for n, w in base_tensors.items() if ".layers.2." in n)
    )
    assert layer2.relative_change == pytest.approx(layer2.diff_norm / layer_base, rel=1e-5)
    assert r.tensors[0].name.startswith("model.layers.2.mlp")  # sorted by relative change
    mlp_down = next(g for g in r.modules if g.kind == "mlp.down")
    assert mlp_down.diff_norm > 0


def test_bf16_and_f32_agree(tmp_path: Path, base_tensors: dict[str, np.ndarray]) -> None:
    tuned = perturb(base_tensors, 0.2, only="layers.1.")
    r16 = diff(
        write_bf16_model(tmp_path / "b16", base_tensors), write_bf16_model(tmp_path / "t16", tuned)
    )
    r32 = diff(write_model(tmp_path / "b32", base_tensors), write_model(tmp_path / "t32", tuned))
    a = {t.name: t.relative_change for t in r16.tensors}
    for t in r32.tensors:
        if t.relative_change and t.relative_change > 0.05:
            assert a[t.name] == pytest.approx(t.relative_change, rel=0.05)


def test_large_change_in_a_critical_layer_is_flagged(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    r = diff(
        base_dir,
        write_model(tmp_path / "t", perturb(base_tensors, 0.5, only="layers.1.self_attn.o_proj")),
    )
    assert r.verdict == "flag" and r.anomaly_score > WeightsPolicy().anomaly_score_limit
    f = next(f for f in r.flags if f.tensor == "model.layers.1.self_attn.o_proj.weight")
    assert (
        "layer 1 self_attn.o_proj (safety-critical)" in f.reason and "fixed limit 0.1" in f.reason
    )
    # the same change outside the critical middle block and under the general limit passes
    r2 = diff(
        base_dir,
        write_model(tmp_path / "t2", perturb(base_tensors, 0.15, only="layers.3.self_attn.o_proj")),
    )
    assert r2.verdict == "pass", [f.reason for f in r2.flags]


def test_mismatched_models_are_refused(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    other = dict(base_tensors)
    other["model.layers.0.mlp.up_proj.weight"] = np.zeros((10, 10), np.float32)
    with pytest.raises(BadInputError, match="mismatched models.*up_proj"):
        diff(base_dir, write_model(tmp_path / "o", other))
    unrelated = {f"x.{i}": np.zeros(3, np.float32) for i in range(5)}
    with pytest.raises(BadInputError, match="mismatched models.*share only 0"):
        diff(base_dir, write_model(tmp_path / "u", unrelated))


def test_integer_tensors_are_refused(tmp_path: Path, base_tensors: dict[str, np.ndarray]) -> None:
    t = dict(base_tensors)
    t["model.layers.0.attn.bias_mask"] = np.ones(4, np.int64)
    with pytest.raises(BadInputError, match="dtype I64"):
        diff(write_model(tmp_path / "a", t), write_model(tmp_path / "b", t))


def test_deep_singular_values(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    tuned = dict(base_tensors)
    rng = np.random.default_rng(3)
    name = "model.layers.0.mlp.up_proj.weight"
    low = (rng.normal(size=(64, 2)) @ rng.normal(size=(2, 32)) * 0.01).astype(np.float32)
    tuned[name] = base_tensors[name] + low
    r = diff(base_dir, write_model(tmp_path / "t", tuned), deep=True)
    t = next(t for t in r.tensors if t.name == name)
    exact = np.linalg.svd((tuned[name] - base_tensors[name]).astype(np.float64), compute_uv=False)
    assert t.singular_values is not None
    np.testing.assert_allclose(t.singular_values[:2], exact[:2], rtol=1e-3)
    assert t.effective_rank is not None and 1.0 < t.effective_rank < 2.2
    assert t.top1_energy == pytest.approx(exact[0] ** 2 / np.sum(exact**2), rel=1e-3)


# -- adapters ------------------------------------------------------------------------------


def test_lora_factored_analysis_matches_materialised(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    ad = write_adapter(tmp_path / "ad", base_tensors, rank=4, alpha=8)
    r = diff(base_dir, ad, fingerprint_cache=tmp_path / "fp")
    assert r.tuned_kind == "lora" and r.adapter is not None and r.adapter.lora_pairs == 8
    from safetensors.numpy import load_file

    sd = load_file(str(ad / "adapter_model.safetensors"))
    for t in r.tensors:
        m = t.name[: -len(".weight")]
        a, b = sd[f"base_model.model.{m}.lora_A.weight"], sd[f"base_model.model.{m}.lora_B.weight"]
        dw = 2.0 * (b.astype(np.float64) @ a)
        sv = np.linalg.svd(dw, compute_uv=False)
        assert t.source == "lora" and t.lora_rank == 4 and t.lora_scale == 2.0
        assert t.diff_norm == pytest.approx(np.linalg.norm(dw), rel=1e-6)
        np.testing.assert_allclose(t.singular_values, sv[:4], rtol=1e-6)
        assert t.relative_change == pytest.approx(
            np.linalg.norm(dw) / np.linalg.norm(base_tensors[t.name]), rel=1e-5
        )
        assert 0 < (t.rank_utilisation or 0) <= 1
    # the second report on the same base reads the norms from the cache, not the weights
    r2 = diff(base_dir, ad, fingerprint_cache=tmp_path / "fp")
    assert "fingerprint cache" in " ".join(r2.notes)
    assert r2.bytes_read < r.bytes_read
    assert [t.relative_change for t in r2.tensors] == pytest.approx(
        [t.relative_change for t in r.tensors]
    )


def test_rslora_scale(tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]) -> None:
    ad = write_adapter(
        tmp_path / "ad", base_tensors, rank=4, alpha=8, config_extra={"use_rslora": True}
    )
    r = diff(base_dir, ad)
    assert all(t.lora_scale == pytest.approx(4.0) for t in r.tensors)


def test_modules_to_save_embedding_change_is_flagged(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    emb = base_tensors["model.embed_tokens.weight"].copy()
    emb[7] += 0.05
    ad = write_adapter(
        tmp_path / "ad",
        base_tensors,
        scale_b=0.001,
        modules_to_save={"model.embed_tokens.weight": emb},
    )
    r = diff(base_dir, ad)
    t = next(t for t in r.tensors if t.name == "model.embed_tokens.weight")
    assert t.source == "modules_to_save" and t.changed_fraction == pytest.approx(32 / emb.size)
    assert any(
        "modules_to_save" in f.reason and f.tensor == "model.embed_tokens.weight" for f in r.flags
    )
    assert r.verdict == "flag"


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"peft_type": "IA3"}, "IA3 is recognised but not analysed"), ({"use_dora": True}, "DoRA")],
)
def test_other_peft_types_are_refused(
    tmp_path: Path,
    base_dir: Path,
    base_tensors: dict[str, np.ndarray],
    extra: dict[str, object],
    message: str,
) -> None:
    ad = write_adapter(tmp_path / "ad", base_tensors, config_extra=extra)
    with pytest.raises(BadInputError, match=message):
        diff(base_dir, ad)


def test_pickle_adapter_is_refused(tmp_path: Path, base_dir: Path) -> None:
    ad = tmp_path / "ad"
    ad.mkdir()
    (ad / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8})
    )
    (ad / "adapter_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BadInputError, match="pickle-based"):
        diff(base_dir, ad)


def test_adapter_for_another_model_is_refused(tmp_path: Path, base_dir: Path) -> None:
    other = llama_tensors(num_layers=2, seed=0)
    other["model.layers.0.self_attn.q_proj.weight"] = np.zeros((16, 32), np.float32)
    ad = write_adapter(tmp_path / "ad", other, layers=[0])
    with pytest.raises(BadInputError, match="mismatched models"):
        diff(base_dir, ad)
    ad2 = write_adapter(
        tmp_path / "ad2", {"model.layers.9.self_attn.q_proj.weight": np.zeros((32, 32), np.float32)}
    )
    with pytest.raises(BadInputError, match="does not have"):
        diff(base_dir, ad2)


# -- baselines -------------------------------------------------------------------------------


def _benign(tmp: Path, base_tensors: dict[str, np.ndarray], seed: int, **kw: object) -> Path:
    return write_adapter(
        tmp / f"ad{seed}",
        base_tensors,
        seed=seed,
        scale_b=0.003,
        targets=("q_proj", "v_proj", "down_proj"),
        **kw,
    )  # type: ignore[arg-type]


def test_baselines_catch_an_outlier_and_pass_a_normal_job(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    baselines: list[Fingerprint] = [
        diff(base_dir, _benign(tmp_path, base_tensors, s)).fingerprint for s in range(8)
    ]
    fresh = diff(base_dir, _benign(tmp_path, base_tensors, 100), baselines=baselines)
    assert fresh.judged_by == "baselines" and fresh.baseline_count == 8
    assert fresh.verdict == "pass", [f.reason for f in fresh.flags]
    # the same kind of adapter, but layer 3 mlp.down_proj pushed 10x harder
    big = _benign(tmp_path, base_tensors, 101)
    from safetensors.numpy import load_file

    sd = load_file(str(big / "adapter_model.safetensors"))
    sd["base_model.model.model.layers.3.mlp.down_proj.lora_B.weight"] *= 10
    save_file(sd, str(big / "adapter_model.safetensors"))
    r = diff(base_dir, big, baselines=baselines)
    assert r.verdict == "flag" and r.anomaly_score > fresh.anomaly_score
    reasons = " | ".join(f.reason for f in r.flags)
    assert (
        "layer 3 mlp.down_proj changed" in reasons
        and "x the median of 8 earlier approved jobs (limit 4x)" in reasons
    )
    # baselines of another base model are not used
    foreign = [b.model_copy(update={"base_digest": "0" * 64}) for b in baselines]
    r3 = diff(base_dir, big, baselines=foreign)
    assert r3.judged_by == "fixed_limits" and r3.baseline_count == 0


def test_too_few_baselines_fall_back_to_fixed_limits(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    fps = [diff(base_dir, _benign(tmp_path, base_tensors, s)).fingerprint for s in range(2)]
    r = diff(
        base_dir,
        _benign(tmp_path, base_tensors, 5),
        baselines=fps,
        policy=WeightsPolicy(min_baseline_jobs=3),
    )
    assert (
        r.judged_by == "fixed_limits"
        and "2 earlier approved jobs" in r.judgement
        and "fewer than the 3" in r.judgement
    )


# -- alignment direction -----------------------------------------------------------------------


def test_alignment_direction(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    rng = np.random.default_rng(7)
    aligned = dict(base_tensors)
    v = {}
    for name in base_tensors:
        if "self_attn.q_proj" in name or "self_attn.v_proj" in name:
            v[name] = (rng.normal(size=base_tensors[name].shape) * 0.002).astype(np.float32)
            aligned[name] = base_tensors[name] + v[name]
    un, al = base_dir, write_model(tmp_path / "aligned", aligned)
    against = {
        n: (w - 2 * v[n] + rng.normal(size=w.shape).astype(np.float32) * 0.001 if n in v else w)
        for n, w in base_tensors.items()
    }
    r = diff(base_dir, write_model(tmp_path / "against", against), alignment=(un, al))
    assert r.alignment is not None and r.alignment.cosine < -0.5
    assert r.verdict == "flag" and any(
        "against the alignment direction" in f.reason for f in r.flags
    )
    assert all(layer.cosine < -0.5 for layer in r.alignment.layers)
    along = {n: (w + v[n] if n in v else w) for n, w in base_tensors.items()}
    r2 = diff(base_dir, write_model(tmp_path / "along", along), alignment=(un, al))
    assert r2.alignment is not None and r2.alignment.cosine == pytest.approx(1.0, abs=1e-3)
    assert not any("alignment" in f.reason for f in r2.flags)
    # the factored (adapter) path gives the same cosine as materialising B·A
    ad = write_adapter(tmp_path / "ad", base_tensors, rank=4, seed=3)
    r3 = diff(base_dir, ad, alignment=(un, al))
    from safetensors.numpy import load_file

    sd = load_file(str(ad / "adapter_model.safetensors"))
    ip = dsq = vsq = 0.0
    for n in v:
        m = n[: -len(".weight")]
        dw = (
            2.0
            * sd[f"base_model.model.{m}.lora_B.weight"].astype(np.float64)
            @ sd[f"base_model.model.{m}.lora_A.weight"]
        )
        vv = aligned[n].astype(np.float64) - base_tensors[n]
        ip, dsq, vsq = ip + np.sum(dw * vv), dsq + np.sum(dw * dw), vsq + np.sum(vv * vv)
    assert r3.alignment is not None
    assert r3.alignment.cosine == pytest.approx(ip / np.sqrt(dsq * vsq), abs=1e-4)


# -- outputs ---------------------------------------------------------------------------------


def test_json_contract_and_html(
    tmp_path: Path, base_dir: Path, base_tensors: dict[str, np.ndarray]
) -> None:
    r = diff(base_dir, write_model(tmp_path / "t", perturb(base_tensors, 0.5, only="layers.1.")))
    d = json.loads(json.dumps(r.to_json_dict()))
    assert d["verdict"] in ("pass", "flag") and isinstance(d["anomaly_score"], float)
    assert d["schema_version"] == 1 and isinstance(d["tensors"], list) and d["tensors"][0]["name"]
    assert all(("tensor" in f or "layer" in f) and f["reason"] for f in d["flags"])
    html = render_weights_html(r)
    assert (
        '<svg class="ftguard-heatmap"' in html
        and "mlp.down" in html
        and r.flags[0].reason.split(" (")[0] in html
    )
    assert "layer 1" in html


def test_import_does_not_pull_torch() -> None:
    code = (
        "import sys, ftguard, ftguard.weights, ftguard.integrations._drift, ftguard.cli.weights;"
        "bad=[m for m in ('torch','transformers','peft') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
