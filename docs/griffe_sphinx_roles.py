"""Griffe extension: render the Sphinx roles of rythmiq's docstrings as API cross-links.

rythmiq's docstrings are Google style with Sphinx roles (``:class:`~rythmiq.RythmiqError```,
``:func:`process_many```) and reST literal-block markers (``Layout::``). mkdocstrings renders
Markdown, where a role would show up as ``:class:`` text. This extension rewrites each role,
once the package is loaded, into an *optional* autorefs link: a link when the target is
documented on some page, plain code otherwise (never a warning). ``Name::`` becomes ``Name:``.
The source files are not touched. Loaded from mkdocs.yml (``extensions:`` of the handler).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_MARKER = re.compile(r"(\S)::$", re.MULTILINE)


def _identifier(obj: griffe.Object, target: str) -> str:
    """Full dotted path of ``target`` as seen from ``obj`` (left as written when unknown)."""
    target = target.lstrip(".")
    head, _, rest = target.partition(".")
    try:
        resolved = obj.resolve(head)
    except (griffe.NameResolutionError, LookupError, AttributeError):
        return target
    return f"{resolved}.{rest}" if rest else resolved


def _rewrite(text: str, obj: griffe.Object) -> str:
    def link(match: re.Match[str]) -> str:
        short, target = match.group(1), match.group(2).strip()
        title = target.rsplit(".", 1)[-1] if short else target
        ident = html.escape(_identifier(obj, target), quote=True)
        return f'<autoref identifier="{ident}" optional><code>{html.escape(title)}</code></autoref>'

    return _LITERAL_MARKER.sub(r"\1:", _ROLE.sub(link, text))


def _walk(obj: griffe.Object, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj.docstring.value, obj)
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, seen)  # type: ignore[arg-type]


class SphinxRoles(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
