"""Griffe extension for the API reference: the reStructuredText in our docstrings, as Markdown.

The docstrings are written for ``help()`` and Sphinx-minded readers: roles such as
``:class:`~intake_broker.access.guard.Principal``` and ``text::`` before a literal block.
mkdocstrings renders docstrings as Markdown, where these would show as ``:class:Principal`` and
a stray ``::``. This extension rewrites a role as inline code (``~`` keeps the last name, as
Sphinx does) and ``::`` as ``:`` before the indented block (which Markdown shows as code).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_AFTER_TEXT = re.compile(r"(?<=\S)::$", re.M)  # "a dict::" -> "a dict:"
_LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*$", re.M)  # "::" on a line of its own -> ""


def markdown(text: str) -> str:
    """``text`` with its reStructuredText roles and literal-block markers made Markdown."""

    def role(found: re.Match) -> str:
        name = found.group(2)
        return f"`{name.rsplit('.', 1)[-1] if found.group(1) else name}`"

    text = _ROLE.sub(role, text)
    return _LITERAL_ALONE.sub("", _LITERAL_AFTER_TEXT.sub(":", text))


class RstRoles(Extension):
    """Rewrite each loaded object's docstring (see the module's docstring)."""

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
