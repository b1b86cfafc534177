"""What the CLI prints of user-supplied text: never Rich markup, never a forged line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftguard.cli import main
from ftguard.cli._common import console
from ftguard.control import service
from ftguard.errors import EXIT_BAD_INPUT
from tests.control.conftest import Env

EVIL = "x [/bold] [red]y[/] :thumbs_up:\n  approval:   mallory (approved, expires never)"


def _evil_job(cp: Env) -> str:
    model, data, cfg = cp.inputs("evil")
    job = service.submit_job(
        cp.ws,
        actor="alice",
        base_model=model,
        dataset=data,
        config=cfg,
        purpose=EVIL,
        prepared_by="dan",
    )
    return job.id


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_markup_in_a_purpose_is_printed_as_written(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _evil_job(cp)
    code, out, err = _run(capsys, "job", "show", job_id)
    assert code == 0 and "Traceback" not in err
    assert "x [/bold] [red]y[/] :thumbs_up:\\n  approval:   mallory" in out
    # the newline in the purpose does not print a line that looks like an approval
    assert not any(line.startswith("  approval:") for line in out.splitlines())


def test_markup_in_a_purpose_does_not_break_job_list(
    cp: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console, "width", 250)  # one table row a line
    _evil_job(cp)
    cp.submit("plain")
    code, out, err = _run(capsys, "job", "list")
    assert code == 0 and "Traceback" not in err
    assert "x [/bold] [red]y[/] :thumbs_up:\\n  approval:   mall" in out
    assert "customer support answers" in out


def test_report_into_an_unwritable_folder(
    cp: Env, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job_id = cp.submit()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = _run(capsys, "report", job_id, "--out", str(blocker / "report"))
    assert code == EXIT_BAD_INPUT
    assert err.count("ftguard: error:") == 1 and "a-file" in err and "Traceback" not in err
    code, out, err = _run(capsys, "report", job_id, "--out", str(tmp_path / "[red]r"))
    assert code == 0 and "[red]r" in out and (tmp_path / "[red]r" / "job.html").is_file()


@pytest.mark.parametrize("bad", ["NUL\x00here", "colour \x1b[8mhidden\x1b[0m", "bell\x07"])
def test_control_characters_in_a_purpose_are_refused_and_nothing_is_stored(
    cp: Env, bad: str
) -> None:
    from ftguard.errors import BadInputError

    model, data, cfg = cp.inputs("ctl")
    before = len(service.list_jobs(cp.ws))
    events = len(list(service.iter_audit(cp.ws)))
    with pytest.raises(BadInputError, match="control characters"):
        service.submit_job(
            cp.ws,
            actor="alice",
            base_model=model,
            dataset=data,
            config=cfg,
            purpose=bad,
            prepared_by="dan",
        )
    assert len(service.list_jobs(cp.ws)) == before
    assert len(list(service.iter_audit(cp.ws))) == events
    # a tab and line breaks are text, not control sequences
    service.submit_job(
        cp.ws,
        actor="alice",
        base_model=model,
        dataset=data,
        config=cfg,
        purpose="line one\n\tline two",
        prepared_by="dan",
    )
