"""ApprovalGuard with a real transformers Trainer on a tiny randomly initialised model."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ftguard.control import service  # noqa: E402
from ftguard.errors import PermissionDeniedError, VerificationError  # noqa: E402
from ftguard.integrations.hf import ApprovalGuard  # noqa: E402
from tests.control.conftest import Env  # noqa: E402


class _Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, object]:
        ids = torch.arange(i, i + 16) % 97
        return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}


def _trainer(out: Path, guard: object) -> object:
    config = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=_Tokens(), callbacks=[guard])


def _weights(trainer: object) -> torch.Tensor:
    return trainer.model.model.layers[0].mlp.up_proj.weight.detach().clone()  # type: ignore[attr-defined]


def test_training_without_job_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTGUARD_JOB", raising=False)
    trainer = _trainer(tmp_path / "out", ApprovalGuard.from_env())
    before = _weights(trainer)
    with pytest.raises(VerificationError, match="no approved ftguard job"):
        trainer.train()  # type: ignore[attr-defined]
    assert torch.equal(before, _weights(trainer))


def _allow_free_runs(cp: Env) -> None:
    cp.set_policy(cp.ws.policy_path.read_text() + "run:\n  allow_free_command: true\n")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_unapproved_and_approved_jobs(cp: Env, tmp_path: Path) -> None:
    job = cp.submit()
    trainer = _trainer(tmp_path / "a", ApprovalGuard(job, actor="alice"))
    before = _weights(trainer)
    with pytest.raises(VerificationError, match="not approved"):
        trainer.train()  # type: ignore[attr-defined]
    assert torch.equal(before, _weights(trainer))

    service.approve(cp.ws, actor="bob", job_id=job)
    service.approve(cp.ws, actor="carol", job_id=job)
    # A trainer that starts its own run trains on whatever it read: refused by default.
    with pytest.raises(PermissionDeniedError, match="free-form"):
        _trainer(tmp_path / "b", ApprovalGuard(job, actor="alice")).train()  # type: ignore[attr-defined]
    _allow_free_runs(cp)
    again = cp.approved("again")
    (cp.root / "again" / "train.jsonl").write_text("tampered\n")
    with pytest.raises(VerificationError, match="dataset .*changed after approval"):
        _trainer(tmp_path / "c", ApprovalGuard(again, actor="alice")).train()  # type: ignore[attr-defined]
    assert service.get_job(cp.ws, again).state == "approved"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_guard_under_launcher_checks_run_token(cp: Env, tmp_path: Path) -> None:
    job = cp.approved()
    ticket = service.start_run(cp.ws, actor="alice", job_id=job)
    forged = ApprovalGuard(job, run_token="not-the-token")
    with pytest.raises(VerificationError, match="run token"):
        _trainer(tmp_path / "f", forged).train()  # type: ignore[attr-defined]
    # Data the run did not stage is refused before the first step.
    evil = tmp_path / "evil.jsonl"
    evil.write_text("{}\n")
    outside = ApprovalGuard(job, run_token=ticket.token, inputs={"dataset": evil})
    with pytest.raises(VerificationError, match="not the approved, staged copy"):
        _trainer(tmp_path / "e", outside).train()  # type: ignore[attr-defined]
    guard = ApprovalGuard(job, run_token=ticket.token, inputs={"dataset": ticket.staged["dataset"]})
    trainer = _trainer(tmp_path / "g", guard)
    before = _weights(trainer)
    trainer.train()  # type: ignore[attr-defined]
    assert guard.verified and not torch.equal(before, _weights(trainer))
    out = tmp_path / "g-out"
    out.mkdir()
    (out / "adapter_model.safetensors").write_bytes(b"w")
    service.finish_run(
        cp.ws, actor="alice", job_id=job, token=ticket.token, exit_code=0, output_path=str(out)
    )
    assert service.get_job(cp.ws, job).state == "trained"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_guard_started_run_is_recorded_as_unbound(cp: Env, tmp_path: Path) -> None:
    _allow_free_runs(cp)
    job = cp.approved()
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "adapter_model.safetensors").write_bytes(b"w")
    trainer = _trainer(tmp_path / "h", ApprovalGuard(job, actor="alice"))
    trainer.train()  # type: ignore[attr-defined]
    view = service.get_job(cp.ws, job)
    assert view.state == "trained" and view.run_count == 1
    start = [e for e in service.iter_audit(cp.ws, job_id=job) if e.action == "run.start"][0]
    assert start.payload["bound"] is False
    with pytest.raises(VerificationError, match="not approved"):
        _trainer(tmp_path / "i", ApprovalGuard(job, actor="alice")).train()  # type: ignore[attr-defined]
    # The gate blocks an unbound run unless the policy allows it.
    decision = service.decide_gate(cp.ws, actor="sec", job_id=job).decision
    assert decision.decision == "block" and any(
        r.rule == "run.bound" for r in decision.rules if not r.passed
    )
