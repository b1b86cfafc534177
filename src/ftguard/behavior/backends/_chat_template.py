"""A model's chat template, read from its files and rendered client-side (jinja2, sandboxed).

The OpenAI-compatible backend renders chat prompts itself when it batches them through the
legacy ``/v1/completions`` endpoint (chat endpoints take one conversation a request). One
template file rendered by one renderer gives the before and the after model the same prompt
bytes; the template's digest is part of the backend's settings, so the output cache never
mixes two templates. Rendering follows transformers' ``apply_chat_template`` (sandboxed
environment, ``trim_blocks``/``lstrip_blocks``, ``raise_exception``, a non-escaping
``tojson``, the tokenizer's special tokens as variables).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ftguard.digests import sha256_bytes
from ftguard.errors import BadInputError

__all__ = ["ChatTemplate", "load_chat_template"]

_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and the special tokens it may refer to.

    Attributes:
        source: Where it was read from (for messages).
        text: The Jinja source.
        special_tokens: ``bos_token``, ``eos_token``, ... as strings.

    """

    source: str
    text: str
    special_tokens: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """SHA-256 over the template text and its special tokens."""
        blob = json.dumps({"t": self.text, "s": dict(self.special_tokens)}, sort_keys=True)
        return sha256_bytes(blob.encode("utf-8"))

    def render(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text of ``messages`` (with the assistant's turn opened).

        Raises:
            BadInputError: The template fails on these messages.

        """
        import jinja2

        try:
            template = _environment().from_string(self.text)
            return template.render(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                **self.special_tokens,
            )
        except jinja2.TemplateError as exc:
            raise BadInputError(f"chat template {self.source}: {exc}") from exc


def _environment() -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(
        value: object,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json stores it: a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"{path} is not a JSON object")
    return data


def _template_in_config(config: Mapping[str, Any]) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, Mapping)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def load_chat_template(path: str | Path) -> ChatTemplate:
    """Read a chat template from a model or tokenizer folder, or from one file.

    ``path`` is a folder holding ``chat_template.jinja``, ``chat_template.json`` or a
    ``tokenizer_config.json`` with a ``chat_template`` (as transformers saves them), a
    ``.jinja`` file, or a ``tokenizer_config.json``. Special tokens come from the
    ``tokenizer_config.json`` beside it, when there is one.

    Raises:
        BadInputError: No template there, or an unreadable file.

    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config_file = folder / "tokenizer_config.json"
    config = _read_json(config_file) if config_file.is_file() else {}
    tokens = {name: _token_text(config.get(name)) for name in _SPECIAL_TOKENS}
    special = {name: text for name, text in tokens.items() if text is not None}
    text: str | None = None
    if path.is_file() and path.name != "tokenizer_config.json":
        if path.suffix == ".json":
            text = _template_in_config(_read_json(path))
        else:
            text = path.read_text(encoding="utf-8")
    elif path.is_dir() and (path / "chat_template.jinja").is_file():
        text = (path / "chat_template.jinja").read_text(encoding="utf-8")
    elif path.is_dir() and (path / "chat_template.json").is_file():
        text = _template_in_config(_read_json(path / "chat_template.json"))
    elif path.exists():
        text = _template_in_config(config)
    else:
        raise BadInputError(f"chat template {path}: no such file or folder")
    if not text:
        raise BadInputError(
            f"no chat template in {path} (looked for chat_template.jinja, chat_template.json "
            "and tokenizer_config.json's chat_template)"
        )
    return ChatTemplate(source=str(path), text=text, special_tokens=special)
