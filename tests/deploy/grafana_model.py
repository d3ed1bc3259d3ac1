"""Checks a dashboard against Grafana's dashboard model as Grafana Labs publishes it (PyPI
grafana-foundation-sdk, generated from Grafana's schema): field names by a decode/encode round trip,
field types against the model's type annotations (enums, literals, numbers, nested objects, and the
panel plugins' own options and field config)."""

import enum
import json
import types
import typing

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

plugins.register_default_plugins()


def dropped_keys(original, decoded, path=""):
    """Paths of keys in original that the decoded copy lost (fields the model does not know)."""
    if isinstance(original, dict) and isinstance(decoded, dict):
        return [p for key, value in original.items()
                for p in ([f"{path}/{key}"] if key not in decoded
                          else dropped_keys(value, decoded[key], f"{path}/{key}"))]
    if isinstance(original, list) and isinstance(decoded, list) and len(original) == len(decoded):
        return [p for i, (a, b) in enumerate(zip(original, decoded))
                for p in dropped_keys(a, b, f"{path}[{i}]")]
    return []


def type_errors(value, hint, path):
    """Where value does not have the annotated type hint, as 'path: problem' strings."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        # Panel options and custom field config: typed by the panel plugin the SDK decoded them with.
        if type(value).__module__.startswith("grafana_foundation_sdk.models"):
            return type_errors(value, type(value), path)
        return []
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        options = [a for a in args if a is not type(None)]
        matching = [a for a in options if isinstance(a, type) and isinstance(value, a)]
        if len(options) == 1 or matching:
            return type_errors(value, (matching or options)[0], path)
        if any(not type_errors(value, a, path) for a in options):
            return []
        return [f"{path}: {value!r} is none of {options}"]
    if value is None:
        return [f"{path}: missing"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [e for i, v in enumerate(value)
                for e in type_errors(v, args[0] if args else typing.Any, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: not an object"]
        return [e for k, v in value.items()
                for e in type_errors(v, args[1] if args else typing.Any, f"{path}.{k}")]
    scalars = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    if hint in scalars:
        ok = isinstance(value, scalars[hint]) and (hint is bool or not isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not a {hint.__name__}"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        ok = isinstance(value, hint) or value in [member.value for member in hint]
        return [] if ok else [f"{path}: {value!r} is not a {hint.__name__}"]
    if isinstance(hint, type):
        if not isinstance(value, hint):
            return [f"{path}: {type(value).__name__} is not a {hint.__name__}"]
        return [e for name, h in typing.get_type_hints(hint).items()
                for e in type_errors(getattr(value, name, None), h, f"{path}.{name}")]
    return [f"{path}: cannot check {hint}"]


def problems(dashboard_json):
    """Every field the model does not know and every value of the wrong type."""
    decoded = model.Dashboard.from_json(dashboard_json)
    encoded = json.loads(json.dumps(decoded, cls=JSONEncoder))
    return ([f"{p}: not a field of Grafana's dashboard model"
             for p in dropped_keys(dashboard_json, encoded)] +
            type_errors(decoded, model.Dashboard, "dashboard"))
