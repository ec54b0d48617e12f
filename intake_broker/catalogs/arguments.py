"""Checking the arguments a YAML catalog gives a driver against the driver's own signature.

A driver plugs in by name only: the arguments it accepts, those it requires and their types
are read from its ``__init__`` (following ``**kwargs`` up the class hierarchy), so a new
driver's YAML entries are checked without the core knowing anything about it.
"""

from __future__ import annotations

import collections.abc as abc
import inspect
import os
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any

#: Marks a parameter whose annotation could not be evaluated: any value is accepted.
UNKNOWN: Any = object()

_SEQUENCES = (
    list,
    tuple,
    set,
    frozenset,
    abc.Sequence,
    abc.MutableSequence,
    abc.Collection,
    abc.Iterable,
    abc.Set,
)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


@dataclass(frozen=True)
class Parameter:
    """One argument a driver accepts."""

    name: str
    required: bool
    hint: Any = UNKNOWN
    #: The module of the class whose ``__init__`` declares it (``intake.*`` for intake's own).
    owner: str = ""


@dataclass(frozen=True)
class Signature:
    """The arguments a driver class accepts: by name, and whether it takes any name (``open``)."""

    parameters: dict[str, Parameter]
    open: bool

    @property
    def required(self) -> list[str]:
        return [p.name for p in self.parameters.values() if p.required]

    def offered(self) -> list[str]:
        """The argument names worth listing to a user (not intake's own plumbing)."""
        return [
            p.name
            for p in self.parameters.values()
            if not p.owner.startswith("intake.") and p.name != "metadata"
        ]


def _hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # an annotation naming something imported only for type checking
        pass
    namespace = getattr(sys.modules.get(function.__module__), "__dict__", {})
    hints = {}
    for name, annotation in getattr(function, "__annotations__", {}).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:
            hints[name] = UNKNOWN
    return hints


def driver_signature(cls: type) -> Signature:
    """The keyword arguments ``cls(**args)`` accepts, following ``**kwargs`` to the parents.

    Arguments of the class's own ``__init__`` without a default are required; a parent's
    arguments without a default are supplied by the child and are not offered.
    """
    parameters: dict[str, Parameter] = {}
    first = True
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        try:
            signature = inspect.signature(klass.__dict__["__init__"])
        except (TypeError, ValueError):
            return Signature(parameters, open=True)
        hints = _hints(klass.__dict__["__init__"])
        more = False
        for index, param in enumerate(signature.parameters.values()):
            if index == 0 or param.kind is param.VAR_POSITIONAL:
                continue  # self
            if param.kind is param.VAR_KEYWORD:
                more = True
                continue
            if param.kind is param.POSITIONAL_ONLY or param.name in parameters:
                continue
            has_default = param.default is not param.empty
            if first or has_default:
                parameters[param.name] = Parameter(
                    param.name,
                    required=first and not has_default,
                    hint=hints.get(param.name, UNKNOWN),
                    owner=klass.__module__,
                )
        first = False
        if not more:
            return Signature(parameters, open=False)
    return Signature(parameters, open=True)


def conforms(value: Any, hint: Any) -> bool:
    """Whether a value read from YAML fits a type hint (unknown hints accept anything)."""
    if hint is UNKNOWN or hint is Any or isinstance(hint, typing.TypeVar | str | typing.ForwardRef):
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (str, os.PathLike) or origin is os.PathLike:
        return isinstance(value, str)
    base = origin or hint
    if base in _SEQUENCES:
        if not isinstance(value, list):
            return False
        if base is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(conforms, value, args))
        item = args[0] if args else UNKNOWN
        return all(conforms(v, item) for v in value)
    if base in _MAPPINGS:
        key, item = args if len(args) == 2 else (UNKNOWN, UNKNOWN)
        return isinstance(value, dict) and all(
            conforms(k, key) and conforms(v, item) for k, v in value.items()
        )
    if isinstance(base, type):
        return isinstance(value, base)
    return True


_WORDS = {
    str: ("a string", "strings"),
    os.PathLike: ("a path", "paths"),
    bool: ("true or false", "true/false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    type(None): ("null", "nulls"),
}


def describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words: ``str | Sequence[str]`` is ``"a string or a list of strings"``."""
    if hint is UNKNOWN or hint is Any:
        return "values" if plural else "anything"
    if hint is None:
        hint = type(None)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [
            a
            for a in args
            if not (a is os.PathLike or typing.get_origin(a) is os.PathLike) or str not in args
        ]
        words: list[str] = []
        for part in parts:
            text = describe(part, plural)
            if text not in words:
                words.append(text)
        return " or ".join(words)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is os.PathLike:
        hint = os.PathLike
    if hint in _WORDS:
        return _WORDS[hint][plural]
    base = origin or hint
    if base in _SEQUENCES:
        inner = f" of {describe(args[0], True)}" if args and args[0] not in (Any, UNKNOWN) else ""
        return ("lists" if plural else "a list") + inner
    if base in _MAPPINGS:
        inner = ""
        if len(args) == 2 and args[1] is not Any:
            inner = f" of {describe(args[0], True)} to {describe(args[1], True)}"
        return ("mappings" if plural else "a mapping") + inner
    name = getattr(base, "__name__", str(base))
    return f"{name} objects" if plural else f"a {name}"


def describe_value(value: Any) -> str:
    """A YAML value and its kind, for error messages: ``5 (an integer)``."""
    kinds = {
        bool: "true/false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kinds.get(type(value), type(value).__name__)})"
