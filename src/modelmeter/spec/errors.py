"""Spec problems: :class:`SpecError`, and pydantic's ``ValidationError`` turned into it.

A problem is a ``(path, message)`` pair; the path is written as a spec author reads it
(``features[3].type``, ``window.bucket``, ``reference.label``; ``spec`` for the whole
document). The document models (:mod:`modelmeter.spec.schema`) raise our own messages as
:class:`~pydantic_core.PydanticCustomError` of type ``spec`` (see :func:`problem`,
:class:`Problems` and :func:`expect`); :func:`spec_error` keeps those and words the few
errors pydantic raises itself (unknown key, not a mapping, missing key) the same way.

>>> error = SpecError([("window.bucket", "expected a duration like '10s', got 'x'")])
>>> error.path, str(error)
('window.bucket', "window.bucket: expected a duration like '10s', got 'x'")
>>> show("x" * 50), show([1, 2]), show(10**400)
("'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...", 'a list of 2', 'a number too large')
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

__all__ = ["Problems", "SpecError", "along", "expect", "path_of", "problem", "show", "spec_error"]

#: The error type of every message written by modelmeter (pydantic's own have other types).
SPEC = "spec"
_UNKNOWN_KEY = ("extra_forbidden", "invalid_key")


class SpecError(ValueError):
    """A model spec or its reference data is invalid.

    ``problems`` lists every ``(path, message)`` found; ``path`` is the first field path
    (``features[3].type``, ``reference.label``, ``window``). ``str(error)`` joins them all,
    one line, ready to be a 4xx ``detail``.

    >>> str(SpecError([("task", "x"), ("window", "y")]))
    '2 problems: task: x; window: y'
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        if not problems:
            raise ValueError("SpecError needs at least one problem")
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        self.path: str = self.problems[0][0]
        text = "; ".join(f"{path}: {message}" for path, message in self.problems)
        if len(self.problems) > 1:
            text = f"{len(self.problems)} problems: {text}"
        super().__init__(text)

    def __reduce__(self) -> tuple[type[SpecError], tuple[tuple[tuple[str, str], ...]]]:
        return type(self), (self.problems,)


SpecError.__module__ = "modelmeter.spec"  # its public home (tracebacks, doctests, pickles)


def show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a number too large"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def got(value: Any) -> str:
    """``show(value)``, or ``nothing`` for a missing or null value."""
    return "nothing" if value is None else show(value)


def problem(message: str) -> PydanticCustomError:
    """One of our messages as a pydantic error (raise it from a validator)."""
    return PydanticCustomError(SPEC, "{message}", {"message": message})


class Problems:
    """Several problems found by one validator, each at a location below the value checked.

    >>> problems = Problems()
    >>> problems.add((1,), "duplicate class '0'")
    >>> problems.raise_if_any(["0", "0"])
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for spec
    ...
    """

    def __init__(self) -> None:
        self.found: list[tuple[tuple[int | str, ...], str]] = []
        self.others: list[InitErrorDetails] = []

    def add(self, loc: tuple[int | str, ...], message: str) -> None:
        self.found.append((loc, message))

    def extend(self, exc: ValidationError) -> None:
        """Add the errors of ``exc`` (pydantic's own keep their type, for :func:`spec_error`)."""
        for error in exc.errors(include_url=False):
            item = InitErrorDetails(
                type=problem(error["msg"]) if error["type"] == SPEC else error["type"],
                loc=tuple(error["loc"]),
                input=error.get("input"),
            )
            if error["type"] != SPEC and "ctx" in error:
                item["ctx"] = error["ctx"]
            self.others.append(item)

    def raise_if_any(self, value: Any) -> None:
        """Raise them all, those about items in item order, then those about the whole."""
        if self.found or self.others:
            items = [
                InitErrorDetails(type=problem(message), loc=loc, input=value)
                for loc, message in self.found
            ] + self.others
            items.sort(key=_item_order)
            raise ValidationError.from_exception_data(SPEC, items)


def _item_order(item: InitErrorDetails) -> float:
    loc = item.get("loc", ())
    return loc[0] if loc and isinstance(loc[0], int) else float("inf")


def along(handler: ValidatorFunctionWrapHandler, value: Any, problems: Problems) -> Any:
    """``handler(value)``, with ``problems`` (found on the raw value) reported with its errors:
    a list's duplicates are found even when one of its items is bad."""
    try:
        result = handler(value)
    except ValidationError as exc:
        problems.extend(exc)
        problems.raise_if_any(value)
        raise
    problems.raise_if_any(value)
    return result


class Expect:
    """A wrap validator: pydantic's errors about the value itself become our one message.

    ``text`` is what is expected (the message is ``"<text>, got <value>"``) or a function of
    the bad value that returns the whole message. Errors inside the value (an item of a
    list, a key of a mapping) are left to their own validators, unless ``whole``; errors
    of our own (type ``spec``) are always kept.
    """

    def __init__(self, text: str | Callable[[Any], str], *, whole: bool = False) -> None:
        self.text = text
        self.whole = whole

    def message(self, value: Any) -> str:
        if callable(self.text):
            return self.text(value)
        return f"{self.text}, got {got(value)}"

    def __call__(self, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            errors = [e for e in exc.errors() if e["type"] != SPEC]
            if errors and (self.whole or any(not e["loc"] for e in errors)):
                raise problem(self.message(value)) from None
            raise


def expect(text: str | Callable[[Any], str], *, whole: bool = False) -> WrapValidator:
    """The :class:`Expect` wrap validator, for ``Annotated[...]`` (put it last)."""
    return WrapValidator(Expect(text, whole=whole))


# --------------------------------------------------------------------------- translation


def path_of(loc: Sequence[int | str]) -> str:
    """``("features", 3, "type")`` -> ``features[3].type``; ``()`` -> ``spec``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "spec"


def spec_error(exc: ValidationError, model: type[BaseModel]) -> SpecError:
    """Every error of ``exc`` (from validating ``model``) as one :class:`SpecError`."""
    problems = []
    for error in _unknown_keys_first(exc.errors(include_url=False)):
        loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
        path = path_of(loc)
        if kind == SPEC:
            message = str((error.get("ctx") or {}).get("message", error["msg"]))
        elif kind in _UNKNOWN_KEY:
            path = f"{path_of(loc[:-1])}.{loc[-1]}" if len(loc) > 1 else str(loc[-1])
            keys = _keys(_type_at(model, loc[:-1]))
            message = f"unknown field; expected one of {', '.join(keys)}"
        elif kind in ("model_type", "model_attributes_type", "dict_type"):
            keys = _keys(_type_at(model, loc))
            message = f"expected a mapping with keys {', '.join(keys)}; got {show(value)}"
        elif kind == "missing":
            found = _expect_at(model, loc)
            message = found.message(None) if found else "required; got nothing"
        else:  # not expected to happen: every field has our own message
            text = error["msg"]
            message = f"{text[:1].lower()}{text[1:]}, got {got(value)}"
        problems.append((path, message))
    return SpecError(problems)


def _unknown_keys_first(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """The errors, each unknown key moved before the other errors of its mapping (pydantic
    reports it after them): a misspelt key is the likely cause of the others."""
    rank: list[float] = []
    for j, error in enumerate(errors):
        rank.append(j)
        if error["type"] in _UNKNOWN_KEY:
            parent = tuple(error["loc"][:-1])
            for i, other in enumerate(errors[:j]):
                if other["type"] not in _UNKNOWN_KEY and other["loc"][: len(parent)] == parent:
                    rank[j] = i - 1 + j / (len(errors) + 1)
                    break
    return [error for _, error in sorted(zip(rank, errors, strict=True), key=lambda p: p[0])]


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """The type under ``Annotated`` and ``X | None``, with the ``Annotated`` metadata."""
    metadata: list[Any] = []
    while True:
        if get_origin(tp) is Annotated:
            tp, *extra = get_args(tp)
            metadata.extend(extra)
        elif get_origin(tp) in (Union, types.UnionType):
            rest = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(rest) != 1:
                return tp, metadata
            tp = rest[0]
        else:
            return tp, metadata


def _field_at(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[Any, list[Any]]:
    """The declared type at ``loc`` below ``model``, and the metadata on the way there."""
    tp: Any = model
    metadata: list[Any] = []
    for part in loc:
        tp, _ = _unwrap(tp)
        if isinstance(part, int) and get_origin(tp) is list:
            tp, metadata = get_args(tp)[0], []
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            field = tp.model_fields[str(part)]
            tp, metadata = field.annotation, list(field.metadata)
        else:
            return None, []
    tp, extra = _unwrap(tp)
    return tp, metadata + extra


def _type_at(model: type[BaseModel], loc: Sequence[int | str]) -> Any:
    return _field_at(model, loc)[0]


def _keys(tp: Any) -> list[str]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _expect_at(model: type[BaseModel], loc: Sequence[int | str]) -> Expect | None:
    for item in _field_at(model, loc)[1]:
        if isinstance(item, WrapValidator) and isinstance(item.func, Expect):
            return item.func
    return None
