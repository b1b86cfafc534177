"""What a server would load beyond what the gate evaluated (review of 2026-12-08, serving side).

Each hazard was reproduced as an attack on an attested model before the check existed: custom
code run by a server started with ``trust_remote_code``, an adapter's own chat template, an
adapter naming its base by hub id, a single weights file beside an unattested adapter config,
and a file rewritten through a hard link after verification.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftguard.digests import manifest_of
from ftguard.errors import BadInputError
from ftguard.gate import adapter_base_problem, serving_hazards

SAFETENSORS = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "


def _full_model(folder: Path) -> Path:
    """A full model folder as transformers saves one, with its tokenizer and chat template."""
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    )
    (folder / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    (folder / "model.safetensors").write_bytes(SAFETENSORS)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (folder / "special_tokens_map.json").write_text("{}")
    return folder


def _adapter(folder: Path, base: str = "/models/base") -> Path:
    """A LoRA adapter as PEFT saves one."""
    folder.mkdir()
    (folder / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": 8,
                "lora_alpha": 16,
                "target_modules": ["q_proj", "v_proj"],
                "base_model_name_or_path": base,
            }
        )
    )
    (folder / "adapter_model.safetensors").write_bytes(SAFETENSORS)
    (folder / "README.md").write_text("---\nlibrary_name: peft\n---\n")
    return folder


def test_what_ftguard_and_transformers_save_has_no_hazard(tmp_path: Path) -> None:
    assert serving_hazards(_full_model(tmp_path / "full")) == []
    assert serving_hazards(_adapter(tmp_path / "adapter")) == []
    assert serving_hazards(tmp_path / "full" / "model.safetensors") == []


def test_custom_code_in_a_model_is_a_hazard(tmp_path: Path) -> None:
    model = _full_model(tmp_path / "full")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(
        json.dumps(config | {"auto_map": {"AutoModelForCausalLM": "modeling_ft.FtForCausalLM"}})
    )
    assert any("auto_map" in h for h in serving_hazards(model))
    pipelines = _full_model(tmp_path / "pipelines")
    (pipelines / "config.json").write_text(
        json.dumps({"custom_pipelines": {"text-generation": {"impl": "evil-org/x--pipe.Evil"}}})
    )
    assert any("custom_pipelines" in h for h in serving_hazards(pipelines))
    (model / "modeling_ft.py").write_text("class FtForCausalLM: ...\n")
    hazards = serving_hazards(model)
    assert any("modeling_ft.py" in h and "trust_remote_code" in h for h in hazards)
    clean = _full_model(tmp_path / "tokenizer-code")
    (clean / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["t.T", None]}})
    )
    assert any("tokenizer_config.json has auto_map" in h for h in serving_hazards(clean))


@pytest.mark.parametrize("name", ["chat_template.jinja", "tokenizer_config.json", "tokenizer.json"])
def test_an_adapters_own_tokenizer_or_chat_template_is_a_hazard(tmp_path: Path, name: str) -> None:
    adapter = _adapter(tmp_path / "adapter")
    (adapter / name).write_text("{}" if name.endswith(".json") else "system: no content policy")
    hazards = serving_hazards(adapter)
    assert len(hazards) == 1 and name in hazards[0] and "base model's" in hazards[0]


@pytest.mark.parametrize("named", ["evil-org/evil-base", "evil-base", "./base", "../base"])
def test_an_adapter_naming_its_base_by_hub_id_or_relative_path_is_a_hazard(
    tmp_path: Path, named: str
) -> None:
    hazards = serving_hazards(_adapter(tmp_path / "adapter", base=named))
    assert len(hazards) == 1 and repr(named) in hazards[0]


def test_a_single_weights_file_of_an_adapter_folder_is_a_hazard(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path / "adapter")
    hazards = serving_hazards(adapter / "adapter_model.safetensors")
    assert len(hazards) == 1 and "adapter_config.json" in hazards[0]


def test_a_hard_linked_file_is_a_hazard(tmp_path: Path) -> None:
    model = _full_model(tmp_path / "full")
    os.link(model / "tokenizer_config.json", tmp_path / "elsewhere.json")
    hazards = serving_hazards(model)
    assert len(hazards) == 1 and "tokenizer_config.json" in hazards[0] and "hard link" in hazards[0]


def test_a_link_or_a_missing_path_is_bad_input(tmp_path: Path) -> None:
    model = _full_model(tmp_path / "full")
    (model / "extra.json").symlink_to(model / "config.json")
    with pytest.raises(BadInputError):
        serving_hazards(model)
    with pytest.raises(BadInputError):
        serving_hazards(tmp_path / "missing")


@pytest.mark.parametrize(
    "extra", ["notes.jinja", "templates/chat_template.jinja", "full/config.json"]
)
def test_an_adapter_holding_more_than_peft_saves_is_a_hazard(tmp_path: Path, extra: str) -> None:
    """Review of 2026-12-08: a template under another name, a tokenizer in a subfolder or a
    whole model in ``full/`` passed, and a server could then be pointed at them."""
    adapter = _adapter(tmp_path / "adapter")
    (adapter / extra).parent.mkdir(parents=True, exist_ok=True)
    (adapter / extra).write_text("{}")
    hazards = serving_hazards(adapter)
    assert len(hazards) == 1 and extra in hazards[0] and "beyond what PEFT saves" in hazards[0]


def test_an_adapters_absolute_base_must_be_a_content_addressed_copy_of_the_approved_one(
    tmp_path: Path,
) -> None:
    """Review of 2026-12-08: an adapter naming ``/srv/serving-only/uncensored-base``, a
    folder only the serving host has, passed wherever that folder was not there to check."""
    approved = _full_model(tmp_path / "base")
    digest = manifest_of(approved).root
    staged = f"/work/ws/.ftguard/staged/{digest}/base"  # what an ftguard run names
    assert adapter_base_problem(_adapter(tmp_path / "a", staged), digest, read_named=False) is None
    assert (
        adapter_base_problem(_adapter(tmp_path / "b", str(approved)), digest, read_named=True)
        is None
    )
    elsewhere = adapter_base_problem(
        _adapter(tmp_path / "c", "/srv/serving-only/uncensored-base"), digest, read_named=True
    )
    assert elsewhere is not None and "content-addressed" in elsewhere
    other = _full_model(tmp_path / "other")
    (other / "chat_template.jinja").write_text("system: no rules")
    assert adapter_base_problem(_adapter(tmp_path / "d", str(other)), digest, read_named=True)
    assert adapter_base_problem(_adapter(tmp_path / "e", str(approved)), digest, read_named=False)


@pytest.mark.parametrize("extra", ["alt/tokenizer_config.json", "pytorch_model.bin", "notes.jinja"])
def test_a_full_model_holding_more_than_transformers_saves_is_a_hazard(
    tmp_path: Path, extra: str
) -> None:
    """Review of 2026-12-08: a full model's output may carry a second tokenizer or template in
    a subfolder, or pickled weights, that a server could be pointed at."""
    model = _full_model(tmp_path / "full")
    (model / "model-00001-of-00002.safetensors").write_bytes(SAFETENSORS)  # shards are fine
    assert serving_hazards(model) == []
    (model / extra).parent.mkdir(parents=True, exist_ok=True)
    (model / extra).write_text("{}")
    hazards = serving_hazards(model)
    assert len(hazards) == 1 and extra in hazards[0] and "transformers saves" in hazards[0]


def test_a_content_addressed_name_is_not_enough_where_the_folder_is_read_or_has_dotdot(
    tmp_path: Path,
) -> None:
    approved = _full_model(tmp_path / "base")
    digest = manifest_of(approved).root
    climbing = f"/srv/x/{digest}/../../evil-base"
    problem = adapter_base_problem(_adapter(tmp_path / "a", climbing), digest, read_named=False)
    assert problem is not None and "'..'" in problem
    squatted = tmp_path / digest  # a folder named by the digest, holding another model
    _full_model(squatted)
    (squatted / "chat_template.jinja").write_text("system: no rules")
    named = _adapter(tmp_path / "b", str(squatted))
    assert adapter_base_problem(named, digest, read_named=False) is None  # not read: the name
    assert "not the approved one" in (adapter_base_problem(named, digest, read_named=True) or "")
    # Inside the workspace's own staging folder the name is trusted without reading the
    # base again (the gate decides in a transaction; staging hashed the copy as it made it);
    # anywhere else a folder of that name is read.
    assert adapter_base_problem(named, digest, read_named=True, staged=tmp_path) is None
    elsewhere = tmp_path / "ws" / "staged"
    assert adapter_base_problem(named, digest, read_named=True, staged=elsewhere) is not None
