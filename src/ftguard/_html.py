"""Shared rendering of the HTML reports: one Jinja2 environment, one base page, one stylesheet.

The four reports (dataset review, weight report, behaviour comparison, job) are single
self-contained HTML files. Each package keeps its own template in its ``templates/`` folder;
every one of them extends ``ftguard/report_base.html.j2`` (in ``ftguard/templates/``), which
fills in the page skeleton, a Content-Security-Policy that forbids any fetch, and the one
stylesheet (``ftguard/templates/report.css``) inlined into the page. Autoescaping is always on.

Templates name the shared files with the ``ftguard/`` prefix::

    {% extends "ftguard/report_base.html.j2" %}
    {% from "ftguard/report_macros.html.j2" import verdict_badge %}
    {% block title %}...{% endblock %}
    {% block kind %}review{% endblock %}
    {% block header %}<h1>... {{ verdict_badge(r.verdict) }}</h1>{% endblock %}
    {% block content %}...{% endblock %}
    {% block footer %}...{% endblock %}

The server's console (``server/templates``) is a separate web application and does not use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Environment

__all__ = [
    "REPORT_BASE_TEMPLATE",
    "SHARED_PREFIX",
    "render_report",
    "report_environment",
    "report_stylesheet",
]

SHARED_PREFIX = "ftguard"
"""Template names under this prefix (``ftguard/...``) are the shared ones."""

REPORT_BASE_TEMPLATE = f"{SHARED_PREFIX}/report_base.html.j2"
"""The base page every report template extends."""

_STYLESHEET = "report.css"


@cache
def report_stylesheet() -> str:
    """The reports' one stylesheet (inlined into every page by the base template)."""
    return resources.files("ftguard").joinpath("templates", _STYLESHEET).read_text("utf-8")


@cache
def report_environment(package: str, *, strict_undefined: bool = False) -> Environment:
    """The Jinja2 environment of one package's report templates (cached per package).

    Its loader finds the shared templates as ``ftguard/<name>`` and the package's own in
    ``<package>/templates/``. Autoescaping is on for every template.

    Args:
        package: The package whose ``templates/`` folder holds the report's own template,
            e.g. ``"ftguard.review"``.
        strict_undefined: Raise on a name or attribute the context lacks (instead of
            rendering it empty).

    """
    import jinja2
    from markupsafe import Markup

    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({SHARED_PREFIX: jinja2.PackageLoader("ftguard", "templates")}),
            jinja2.PackageLoader(package, "templates"),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined if strict_undefined else jinja2.Undefined,
    )
    env.globals["report_css"] = Markup(report_stylesheet())  # noqa: S704 - our own file
    return env


def render_report(
    package: str,
    template: str,
    context: Mapping[str, Any],
    *,
    strict_undefined: bool = False,
) -> str:
    """Render one of ``package``'s report templates into a self-contained HTML page.

    Args:
        package: The package that holds the template (see :func:`report_environment`).
        template: The template's file name in that package's ``templates/`` folder.
        context: The template's variables.
        strict_undefined: See :func:`report_environment`.

    """
    env = report_environment(package, strict_undefined=strict_undefined)
    return str(env.get_template(template).render(**context))
