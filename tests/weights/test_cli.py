from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ftguard.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from _ckpt import llama_tensors, perturb, write_adapter, write_model  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    b = llama_tensors()
    return {
        "base": write_model(d / "base", b),
        "same": write_model(d / "same", {k: v.copy() for k, v in b.items()}, shards=2),
        "big": write_model(d / "big", perturb(b, 1.0, only="layers.1.")),
        "adapter": write_adapter(d / "ad", b, scale_b=0.0005),
        "other": write_model(
            d / "other",
            llama_tensors(num_layers=2)
            | {"model.embed_tokens.weight": np.zeros((3, 3), np.float32)},
            num_layers=2,
        ),
        "dir": d,
    }


def test_pass_exits_0_with_json(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["weights", "diff", str(models["base"]), str(models["same"]), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["verdict"] == "pass" and out["anomaly_score"] == 0.0
    assert {"verdict", "anomaly_score", "flags", "tensors"} <= set(out)


def test_flag_exits_1_and_writes_html(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    html = models["dir"] / "r.html"
    rc = main(
        ["weights", "diff", str(models["base"]), str(models["big"]), "--html", str(html), "--deep"]
    )
    out = capsys.readouterr().out
    assert rc == 1 and "verdict: flag" in out and "FLAG: layer 1" in out
    assert "<html" in html.read_text()


def test_adapter_human_output(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["weights", "diff", str(models["base"]), str(models["adapter"])])
    out = capsys.readouterr().out
    assert rc == 0 and "lora update: 8 of 39 tensors changed" in out


def test_alignment_option(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "weights",
            "diff",
            str(models["base"]),
            str(models["adapter"]),
            "--json",
            "--alignment",
            f"{models['base']},{models['big']}",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc in (0, 1) and out["alignment"]["layers"]
    rc = main(
        ["weights", "diff", str(models["base"]), str(models["adapter"]), "--alignment", "just-one"]
    )
    assert rc == 2 and "UNALIGNED,ALIGNED" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["pickle", "garbage", "mismatch", "missing"])
def test_errors_exit_2_with_one_line(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str], case: str
) -> None:
    d = models["dir"]
    if case == "pickle":
        (d / "pytorch_model.bin").write_bytes(b"\x80\x04")
        tuned = d / "pytorch_model.bin"
    elif case == "garbage":
        (d / "g.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0not json at all!")
        tuned = d / "g.safetensors"
    elif case == "mismatch":
        tuned = models["other"]
    else:
        tuned = d / "nowhere"
    rc = main(["weights", "diff", str(models["base"]), str(tuned), "--json"])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ftguard: error:") and "Traceback" not in cap.err
    expected = {
        "pickle": "pickle-based",
        "garbage": "invalid safetensors header",
        "mismatch": "mismatched models",
        "missing": "no such file",
    }
    assert expected[case] in lines[0]


def test_policy_file(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pol = models["dir"] / "policy.yaml"
    pol.write_text(
        "version: 1\nweights:\n  max_relative_change: 100\n  max_critical_relative_change: 100\n  max_layer_relative_change: 100\n  max_total_relative_change: 100\n"
    )
    rc = main(["weights", "diff", str(models["base"]), str(models["big"]), "--policy", str(pol)])
    assert rc == 0, capsys.readouterr().out
    pol.write_text("weights:\n  no_such_limit: 1\n")
    rc = main(["weights", "diff", str(models["base"]), str(models["big"]), "--policy", str(pol)])
    assert rc == 2 and "no_such_limit" in capsys.readouterr().err


def test_diff_loads_neither_the_control_plane_nor_other_commands(models: dict[str, Path]) -> None:
    """``ftguard weights diff`` on local files imports only what it uses (start-up time)."""
    code = (
        "import sys\n"
        "from ftguard.cli import main\n"
        f"rc = main(['weights', 'diff', {str(models['base'])!r}, {str(models['same'])!r}, '--json'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'yaml')"
        " or m.startswith(('ftguard.control', 'ftguard.cli.audit', 'ftguard.cli._common'))"
        # the policy's other sections and its YAML loader: only WeightsPolicy is used
        " or m in ('ftguard.policy._model', 'ftguard.policy._behavior',"
        " 'ftguard.policy._review', 'ftguard.policy._load'))\n"
        "print(rc, heavy)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout.strip().splitlines()[-1] == "0 []", p.stdout[-500:] + p.stderr[-500:]
