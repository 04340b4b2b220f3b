"""Schema problems of a campaign (pydantic errors) as `ConfigError`s at their YAML places.

A step `{acquire: {...}}` validates as `AcquireStep` with pydantic location
`steps.N.acquire.FIELD`, which is its YAML key path too; the scalar bodies of `wait` and `set`
(`wait: 30 s`) drop the field name pydantic adds (`wait.duration`).
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from cryodaq.acquisition.campaign.schema import SCALAR_BODY, STEP_KINDS, STEP_MODELS, Campaign
from cryodaq.acquisition.errors import ConfigError, did_you_mean
from cryodaq.acquisition.yaml_source import KeyPath, YamlDocument


def schema_problems(doc: YamlDocument) -> list[ConfigError]:
    """Every problem pydantic finds in the campaign mapping `doc.data`; the failed members of
    a union (`float | str`) make one problem."""
    try:
        Campaign.model_validate(doc.data)
    except ValidationError as exc:
        merged: dict[tuple[str, str], ConfigError] = {}
        for error in exc.errors():
            problem = _problem(doc, error)
            first = merged.setdefault((problem.where, problem.key), problem)
            if first is not problem and error["type"].endswith("_type"):
                alternative = problem.message.removeprefix("Input should be ").split(", got")[0]
                head, got, tail = first.message.partition(", got")
                first.message = f"{head} or {alternative}{got}{tail}"
                first.args = (f"{first.where} {first.key}: {first.message}",)
        return list(merged.values())
    return []


def _problem(doc: YamlDocument, error: Any) -> ConfigError:
    loc = tuple(error["loc"])
    kind = error["type"]
    path, about_key = _yaml_path(doc.data, loc)
    if kind == "union_tag_invalid":
        tag = str(error["ctx"]["tag"])
        return doc.error(
            (*path, tag),
            f"unknown step kind {tag!r}{did_you_mean(tag, list(STEP_KINDS))}; "
            f"kinds: {', '.join(STEP_KINDS)}",
            at_key=True,
        )
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = [f for f in model.model_fields if f != "kind"] if model else []
        return doc.error(
            path,
            f"unknown key{did_you_mean(str(loc[-1]), allowed)}; allowed: {', '.join(allowed)}",
            at_key=True,
        )
    if kind == "missing":
        return doc.error(path, "missing: this key is required")
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = repr(error.get("input"))
    if kind != "value_error" and len(shown) <= 60:
        message += f", got {shown}"
    return doc.error(path, message, at_key=about_key)


def _yaml_path(data: Any, loc: tuple[Any, ...]) -> tuple[KeyPath, bool]:
    """The YAML key path of a pydantic location, and whether the problem is the key itself."""
    out: list[Any] = []
    node = data
    skip: str | None = None
    about_key = False
    for part in loc:
        if part == "[key]":
            about_key = True
            continue
        if part == skip:  # the field name behind a scalar step body
            skip = None
            continue
        skip = None
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, dict):
            key = next((k for k in node if k == part or str(k) == str(part)), part)
            is_step = len(node) == 1 and key in SCALAR_BODY and bool(out) and isinstance(
                out[-1], int)
            out.append(key)
            node = node.get(key)
            skip = SCALAR_BODY[key] if is_step else None
        else:
            break  # the rest names union members (`float`, `str`), not YAML keys
    return tuple(out), about_key


def _strip(tp: Any) -> Any:
    """`X` from `Annotated[X, ...]` and `X | None`."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (types.UnionType, typing.Union):
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return tp


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at pydantic location `loc`."""
    tp: Any = Campaign
    for part in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif part in STEP_MODELS:
            tp = STEP_MODELS[part]
        else:
            return None
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
