"""Overrides on top of a profile: `--config` files (YAML or JSON, a run's `run.json` included), then
`--set FIELD=VALUE`, then `--seed`, each value converted to its field's declared type and all checked
together; `config_from_dict` rebuilds a stored configuration, `describe_config` prints one."""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from .profile import ProfileConfig
from .profiles import get_profile
from .schema import SIZED_FIELDS, ConfigError, choice_error, field_docs, literal_choices

_NULLS = ("null", "none", "None", "~")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _coerce(dotted: str, tp: Any, value: Any) -> Any:
    """`value` (a `--set` string, or a YAML/JSON value) as type `tp`; one error naming the field."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value in _NULLS):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(dotted, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{dotted}: cannot be {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{dotted}: {value!r} is not a JSON list ({e.msg})") from None
            else:  # a,b,c
                value = [v.strip() for v in text.split(",")] if text else []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{dotted}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{dotted}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(f"{dotted}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(f"{dotted}[{i}]", item, v) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    allowed = literal_choices(tp)
    if allowed is not None:
        if value not in allowed:
            raise choice_error(dotted, allowed, value)
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{dotted}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{dotted}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{dotted}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{dotted}: expected a string, got {value!r}")
    return value


def field_type(cfg: Any, dotted: str) -> Any:
    """The declared type of `a.b.c`; one error naming an unknown field."""
    *path, leaf = dotted.split(".")
    obj = cfg
    for part in path:
        if not dataclasses.is_dataclass(obj) or part not in {f.name for f in dataclasses.fields(obj)}:
            raise ConfigError(f"unknown config field {dotted!r}")
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj) or leaf not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"unknown config field {dotted!r}" + _suggest(obj, leaf))
    tp = typing.get_type_hints(type(obj))[leaf]
    if dataclasses.is_dataclass(tp):
        raise ConfigError(f"{dotted!r} is a section; set one of its fields, e.g. {dotted}."
                          f"{dataclasses.fields(tp)[0].name}=...")
    return tp


def _suggest(obj: Any, leaf: str) -> str:
    if not dataclasses.is_dataclass(obj):
        return ""
    close = difflib.get_close_matches(leaf, [f.name for f in dataclasses.fields(obj)], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def set_field(cfg: Any, dotted: str, value: Any) -> None:
    """Set `a.b.c` from a string or a parsed YAML/JSON value, converted to the field's declared type.
    Checks of values that depend on each other wait for `validate` (so `global_batch_size` and
    `micro_batch_size` can be changed together in either order)."""
    if dotted == "name":
        raise ConfigError("the profile name cannot be overridden; use --profile")
    value = _coerce(dotted, field_type(cfg, dotted), value)
    *path, leaf = dotted.split(".")
    obj = cfg
    for part in path:
        obj = getattr(obj, part)
    setattr(obj, leaf, value)


def validate(cfg: Any) -> None:
    """Re-run every section's `__post_init__` checks (after a batch of `set_field`s)."""
    for f in dataclasses.fields(cfg):
        val = getattr(cfg, f.name)
        if dataclasses.is_dataclass(val):
            validate(val)
    post = getattr(cfg, "__post_init__", None)
    if post is not None:
        post()


def parse_set(item: str) -> tuple[str, str]:
    """`pretrain.max_steps=200` -> ("pretrain.max_steps", "200")."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected FIELD=VALUE, e.g. pretrain.max_steps=200")
    return key.strip(), value


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"pretrain": {"max_steps": 5}} -> {"pretrain.max_steps": 5} (section dicts only)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_overrides_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON file of overrides (nested sections or dotted keys), flattened to dotted keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"--config {path}: not UTF-8 ({e})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"--config {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of fields to values, got {type(data).__name__}")
    if isinstance(data.get("config"), dict) and "profile" in data:  # a run directory's run.json
        data = data["config"]
    data = flatten(data)
    data.pop("name", None)  # a run.json-style `config` may carry it
    return data


def resolve_config(profile: str, config_files: list[str | Path] = (), sets: list[str] = (),
                   seed: int | None = None) -> ProfileConfig:
    """The profile, then each `--config` file, then each `--set`, then `--seed` (later wins)."""
    return apply_overrides(get_profile(profile), config_files, sets, seed)


def apply_overrides(cfg: ProfileConfig, config_files: list[str | Path] = (), sets: list[str] = (),
                    seed: int | None = None) -> ProfileConfig:
    """`cfg` with each `--config` file, then each `--set`, then `--seed` applied (later wins), checked
    together; an override of a field that compute sizing sets is one error. Every entry point
    (`run`, `config`, `python -m phi_utils.train`) goes through here."""
    for f in config_files:
        for dotted, value in read_overrides_file(f).items():
            try:
                set_field(cfg, dotted, value)
            except ConfigError as e:
                raise ConfigError(f"--config {f}: {e}") from None
    for item in sets:
        dotted, value = parse_set(item)
        try:
            set_field(cfg, dotted, value)
        except ConfigError as e:
            raise ConfigError(f"--set {item}: {e}") from None
    if seed is not None:
        cfg.seed = seed
    validate(cfg)
    if cfg.compute.minutes_per_run > 0:
        given = {**{d: v for f in config_files for d, v in read_overrides_file(f).items()},
                 **dict(parse_set(i) for i in sets)}
        _refuse_sized_overrides(cfg, given)
    return cfg


def _refuse_sized_overrides(cfg: ProfileConfig, given: dict[str, Any]) -> None:
    """One error for an override of a field that compute sizing sets to another value (a run's own
    run.json, whose values are the sized ones, passes)."""
    for dotted, value in given.items():
        section, _, leaf = dotted.partition(".")
        if section in ("pretrain", "finetune") and leaf in SIZED_FIELDS:
            have = getattr(getattr(cfg, section), leaf)
            if _coerce(dotted, field_type(cfg, dotted), value) != have:
                raise ConfigError(f"{dotted} is set by compute sizing ({have!r} with compute.minutes_per_run = "
                                  f"{cfg.compute.minutes_per_run:g}); change compute.* instead, or set "
                                  "compute.minutes_per_run=0 to size the runs by hand")


def config_from_dict(d: dict[str, Any]) -> ProfileConfig:
    """Rebuild a resolved configuration from `cfg.to_dict()` (a run directory's `run.json`): the
    profile's defaults, then every stored value (a field the code no longer has is an error naming it)."""
    if "name" not in d:
        raise ConfigError("stored configuration has no profile `name`")
    cfg = get_profile(d["name"])
    for dotted, value in flatten({k: v for k, v in d.items() if k != "name"}).items():
        set_field(cfg, dotted, value)
    validate(cfg)
    return cfg


def describe_config(cfg: ProfileConfig, base: ProfileConfig | None = None) -> str:
    """Every field: `section.field = value  # docstring`; `(overridden, profile: x)` where it differs from `base`."""
    lines: list[str] = [f"# profile {cfg.name!r}: {cfg.description}"]
    flat_base = flatten(base.to_dict()) if base is not None else {}

    def walk(obj: Any, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            val = getattr(obj, f.name)
            key = prefix + f.name
            if dataclasses.is_dataclass(val):
                lines.append(f"\n[{key}]  # {docs.get(f.name, '')}")
                walk(val, key + ".")
                continue
            shown = json.dumps(list(val) if isinstance(val, tuple) else val)
            note = ""
            if base is not None and flat_base.get(key) != (list(val) if isinstance(val, tuple) else val):
                note = f"  (overridden; profile: {json.dumps(flat_base.get(key))})"
            doc = " ".join(docs.get(f.name, "").split())
            lines.append(f"{key} = {shown}{note}\n    {doc}")

    walk(cfg, "")
    return "\n".join(lines)
