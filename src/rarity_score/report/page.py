"""The pieces both reports write their pages with: the templates (``report/templates/*.html``,
:class:`string.Template`), HTML escaping, and what the two pages share: the head, and the rows
of the settings table that say which run made the output.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Iterable, Mapping
from importlib import resources
from string import Template
from typing import Any

from rarity_score._version import __version__
from rarity_score.io.names import printable

__all__ = ["escape", "page_head", "run_rows", "setting_row", "template"]


def escape(text: object) -> str:
    """HTML-escape ``text`` for element content and quoted attributes (made printable first: a
    lone surrogate from an output file could not even be written as UTF-8)."""
    return html.escape(printable(str(text)), quote=True)


def template(name: str) -> Template:
    """The template ``name`` of ``report/templates/``."""
    source = resources.files("rarity_score.report") / "templates" / name
    return Template(source.read_text(encoding="utf-8"))


def page_head(*, version: str, title: str, stylesheets: Iterable[str]) -> str:
    """The page from its doctype to ``</head>`` (``head.html``); ``version`` and ``title`` are
    escaped here, ``stylesheets`` are file names beside the page."""
    links = "\n".join(f'<link rel="stylesheet" href="{escape(name)}">' for name in stylesheets)
    return (
        template("head.html")
        .substitute(version=escape(version), title=escape(title), stylesheets=links)
        .rstrip("\n")
    )


def setting_row(label: str, cell_html: str) -> str:
    """One row of a settings table: ``label`` (escaped here) and its cell (HTML already)."""
    return f'      <tr><th scope="row">{escape(label)}</th><td>{cell_html}</td></tr>'


def run_rows(run: Mapping[str, Any]) -> list[str]:
    """The last rows of a settings table, from ``run.json``: the package version that wrote the
    output (this one when not recorded), the command, when it ran (the last two if recorded)."""
    rows = [setting_row("package version", escape(run.get("package_version") or __version__))]
    command = run.get("command")
    if isinstance(command, list):
        command = shlex.join(str(part) for part in command)
    if command:
        rows.append(setting_row("command", f"<code>{escape(command)}</code>"))
    if run.get("created"):
        rows.append(setting_row("created", escape(run["created"])))
    return rows
