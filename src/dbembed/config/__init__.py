"""One typed settings object for every surface (CLI, API, library), in sections per layer.

``Settings`` has one section per layer: ``store``, ``sources``, ``text``, ``embed``, ``run``,
``api``, ``chat`` (models in :mod:`dbembed.config.sections`); a layer receives only its section.

Every setting also has one *flat* name (the documented TOML key, ``DBEMBED_<NAME>`` env var and
flag name).  A flat name sets the field in every section that has it (``aws_region`` sets
``store``, ``sources`` and ``embed``); a sectioned key (``[embed] aws_region = ...`` in TOML, or
``embed={...}``) sets one section only.  Within one mapping the later key wins, so in a TOML
file a ``[section]`` table (which always follows the top-level keys) refines a flat key.

Precedence, highest first: explicit overrides (CLI flags / keyword arguments),
``DBEMBED_*`` environment variables, the TOML file, then the defaults.
The TOML file is ``--config PATH``, else ``$DBEMBED_CONFIG``, else
``./dbembed.toml`` when it exists.  Loading settings has no side effects: it
creates no directory and starts no server.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, Field, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from dbembed.config.sections import (
    BACKENDS,
    DEFAULT_MODEL,
    DOCUMENT_FORMATS,
    PRECISIONS,
    ApiSettings,
    ChatSettings,
    EmbedSettings,
    RunSettings,
    Section,
    SourcesSettings,
    StoreSettings,
    TableOverride,
    TextSettings,
)
from dbembed.errors import ConfigError, echo, mask_url

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS", "DEFAULT_MODEL", "DOCUMENT_FORMATS", "PRECISIONS", "FLAT", "SECTIONS", "ApiSettings", "ChatSettings",
    "EmbedSettings", "RunSettings", "Settings", "SourcesSettings", "StoreSettings", "TableOverride",
    "TextSettings", "load_settings",
]

SECTIONS: dict[str, type[Section]] = {
    "store": StoreSettings,
    "sources": SourcesSettings,
    "text": TextSettings,
    "embed": EmbedSettings,
    "run": RunSettings,
    "api": ApiSettings,
    "chat": ChatSettings,
}
# Sections whose fields drop the section's name from their flat name (chat.tables <- chat_tables).
_PREFIXED = {
    "chat": ("chat_", ("tables", "sync_batch", "summarizer", "summarizer_base_url",
                       "summarizer_api_key_env", "summary_max_chars")),
    "api": ("api_", ("db_pool_size",)),
}


def _flat_map() -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for section, model in SECTIONS.items():
        prefix, fields = _PREFIXED.get(section, ("", ()))
        for field in model.model_fields:
            flat = prefix + field if field in fields else field
            out.setdefault(flat, []).append((section, field))
    return {flat: tuple(targets) for flat, targets in out.items()}


# Flat name -> the (section, field) pairs it sets; a flat read returns the first one.
FLAT: dict[str, tuple[tuple[str, str], ...]] = _flat_map()
# Flat names that several sections share.
SHARED = {flat: targets for flat, targets in FLAT.items() if len(targets) > 1}


def _section_values(section: str, value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return {k: getattr(value, k) for k in value.model_fields_set}
    if not isinstance(value, Mapping):
        raise ConfigError(f"setting {section!r} must be a table of {section} settings, not {echo(value)}")
    unknown = [k for k in value if k not in SECTIONS[section].model_fields]
    if unknown:
        raise ConfigError(f"unknown setting {echo(section + '.' + str(unknown[0]))}{_hint(str(unknown[0]), section)}")
    return dict(value)


def _hint(key: str, section: str | None = None) -> str:
    """`` (did you mean 'workers'?)`` for a near miss of a known key, else ``""``."""
    known = list(SECTIONS[section].model_fields) if section else [*FLAT, *SECTIONS]
    close = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def nest(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat and sectioned keys -> ``{section: {field: value}}``; within ``values`` the later key wins.

    Raises ConfigError naming the first unknown key.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in SECTIONS:
            out.setdefault(key, {}).update(_section_values(key, value))
        elif key in FLAT:
            for section, field in FLAT[key]:
                out.setdefault(section, {})[field] = value
        else:
            raise ConfigError(f"unknown setting {echo(key)}{_hint(str(key))}")
    return out


def _merge(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Nested layers, lowest precedence first: a later layer's field replaces an earlier one's."""
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, fields in layer.items():
            out.setdefault(section, {}).update(fields)
    return out


class _EnvNames(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DBEMBED_", extra="ignore")


# One field per flat name, typed as its section field, so DBEMBED_<NAME> parses exactly as a flat
# settings class would parse it (JSON for lists and tables, plain strings otherwise).
_FlatEnv: type[BaseSettings] = create_model(  # type: ignore[call-overload]
    "_FlatEnv",
    __base__=_EnvNames,
    **{flat: (SECTIONS[t[0][0]].model_fields[t[0][1]].annotation, None) for flat, t in FLAT.items()},
)


def env_values() -> dict[str, Any]:
    """The ``DBEMBED_<NAME>`` variables that are set, by flat name, not yet validated.

    Raises ConfigError naming the variable when a list or table value is not valid JSON.
    """
    try:
        return {k: v for k, v in EnvSettingsSource(_FlatEnv)().items() if k in FLAT}
    except SettingsError as exc:
        found = re.search(r'field "(\w+)"', str(exc))
        name = f"DBEMBED_{found.group(1).upper()}" if found else "a DBEMBED_* variable"
        raise ConfigError(f"invalid setting {name}: not valid JSON (lists and tables are JSON)") from exc


class _Layered(PydanticBaseSettingsSource):
    """Keyword arguments over ``DBEMBED_<NAME>`` env vars, both nested into sections."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _merge(nest(env_values()), nest(self._init()))


class Settings(BaseSettings):
    """Everything dbembed can be told, in one section per layer.

    ``Settings(workers=2)`` (flat names), ``Settings(run={"workers": 2})`` and
    ``Settings(run=RunSettings(workers=2))`` are equivalent; unset values come from
    ``DBEMBED_<NAME>`` env vars, then defaults.  Flat attribute names (``settings.workers``) are
    still readable and assignable while the layers move to their sections.
    """

    model_config = SettingsConfigDict(extra="forbid", validate_assignment=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    run: RunSettings = Field(default_factory=RunSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_keys(cls, data: Any) -> Any:
        return nest(data) if isinstance(data, Mapping) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (flags) > DBEMBED_<NAME> env; the TOML file is laid under both by load_settings.
        return (_Layered(settings_cls, init_settings),)

    # --- flat names, while the layers move to their sections ------------------------------
    def __getattr__(self, name: str) -> Any:
        targets = FLAT.get(name)
        if targets is None:
            return BaseModel.__getattr__(self, name)  # type: ignore[attr-defined]
        section, field = targets[0]
        return getattr(getattr(self, section), field)

    def __setattr__(self, name: str, value: Any) -> None:
        targets = FLAT.get(name)
        if targets is None:
            super().__setattr__(name, value)
            return
        for section, field in targets:
            setattr(getattr(self, section), field, value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with its own sections; ``update`` takes flat or section names (validated)."""
        copied = super().model_copy(deep=deep)
        for section in SECTIONS:
            copied.__dict__[section] = getattr(self, section).model_copy(deep=deep)
        for section, fields in nest(update or {}).items():
            target = getattr(copied, section)
            for field, value in fields.items():
                setattr(target, field, value)
        return copied

    # ------------------------------------------------------------------------------
    def resume_wait_s(self, conninfo: str = "") -> float:
        """See :meth:`StoreSettings.resume_wait_s`."""
        return self.store.resume_wait_s(conninfo)

    def resolved_data_dir(self) -> Path:
        """See :meth:`StoreSettings.resolved_data_dir`."""
        return self.store.resolved_data_dir()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:  # a directory, no permission, a name too long
        raise ConfigError(f"config file {echo(str(path))} cannot be read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except ValueError as exc:  # a number past Python's 4300-digit limit for int()
        raise ConfigError(f"config file {path} is not valid TOML: {str(exc).split(';')[0]}") from exc
    # Allow an optional [dbembed] table so the file can be shared with other tools: then the
    # other top-level keys that are not settings belong to those tools and are left alone.
    if isinstance(data.get("dbembed"), dict):
        top = {k: v for k, v in data.items() if k != "dbembed" and (k in FLAT or k in SECTIONS)}
        data = {**top, **data["dbembed"]}
    return data


def _config_path(config_file: Path | str | None) -> Path | None:
    if config_file:
        return Path(config_file)
    if os.environ.get("DBEMBED_CONFIG"):
        return Path(os.environ["DBEMBED_CONFIG"])
    return Path("dbembed.toml") if Path("dbembed.toml").is_file() else None


def load_settings(
    config_file: Path | str | None = None, *, flag_names: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build settings: overrides (flags) > DBEMBED_* env > TOML file > defaults.

    Overrides and file keys are flat names or sections (``embed={"batch_size": 8}``).
    ``None`` overrides are ignored so that an unset CLI flag never hides an env var.
    ``flag_names`` maps an override's name to how the user spelled it (``{"workers": "--workers"}``);
    without it an override is named as the keyword argument it is.
    Raises ConfigError for a missing file, bad TOML, an unknown key or an invalid value, naming the
    value's source as the user gave it: the flag, the ``DBEMBED_*`` variable, or the file and its key.
    """
    path = _config_path(config_file)
    flags = {k: v for k, v in overrides.items() if v is not None}
    raw = _read_toml(path) if path is not None else {}
    try:
        file_values = nest(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    env = env_values()
    _warn_misspelled_env()
    origins = _origins(
        ((raw, lambda key: f"{path}: {key}"), (env, lambda key: f"DBEMBED_{key.upper()}"),
         (flags, lambda key: (flag_names or {}).get(key) or f"argument {key}")),
    )  # fmt: skip
    try:
        merged: dict[str, Any] = _merge(file_values, nest(env), nest(flags))
        return Settings(**merged)
    except ConfigError:
        raise
    except Exception as exc:  # pydantic ValidationError and friends
        raise ConfigError(_describe(exc, origins)) from exc


# DBEMBED_* variables that are not settings (read elsewhere): never reported as misspelled.
OTHER_ENV = frozenset({"config", "cache_dir", "debug", "crash_at", "keep_test_tmp", "demo_data"})
_warned_env: set[str] = set()


def _warn_misspelled_env() -> None:
    """Warn (once per process) about a ``DBEMBED_*`` variable that is no setting but close to one
    (``DBEMBED_WORKRS``): pydantic-settings ignores it, so the user's value would be lost silently."""
    known = [*FLAT, *SECTIONS, *OTHER_ENV]
    for name in os.environ:
        key = name[len("DBEMBED_") :].lower() if name.upper().startswith("DBEMBED_") else None
        if key is None or key in known or name in _warned_env:
            continue
        close = difflib.get_close_matches(key, known, n=1)
        if close:
            _warned_env.add(name)
            log.warning(
                "environment variable %s is not a dbembed setting and is ignored (did you mean DBEMBED_%s?)",
                echo(name)[1:-1],
                close[0].upper(),
            )


Layer = tuple[Mapping[str, Any], Callable[[str], str]]


def _origins(layers: tuple[Layer, ...]) -> dict[tuple[str, str], str]:
    """``(section, field)`` -> where its value came from, as the user wrote it; a later layer wins.

    A flat key is named as such (``--workers``, ``DBEMBED_WORKERS``, ``dbembed.toml: workers``);
    a sectioned one with its section (``dbembed.toml: [run] workers``).
    """
    out: dict[tuple[str, str], str] = {}
    for values, name in layers:
        for key, value in values.items():
            if key in SECTIONS and isinstance(value, Mapping):
                for field in value:
                    out[(key, str(field))] = name(f"[{key}] {field}")
            for section, field in FLAT.get(key, ()):
                out[(section, field)] = name(key)
    return out


def _key_part(part: str) -> str:
    return f".{part}" if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f".{json.dumps(part)}"


def _describe(exc: Exception, origins: Mapping[tuple[str, str], str] | None = None) -> str:
    """A validation error as ``invalid setting NAME: message (got VALUE)``, one clause per fault.

    NAME is the value's source from ``origins`` (flag, env var or file key), else its dotted key.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid settings: {exc}"
    lines = []
    for err in errors(include_url=False):
        loc = tuple(str(part) for part in err.get("loc", ()))
        name = (origins or {}).get((loc[0], loc[1])) if len(loc) >= 2 else None
        key = name + "".join(map(_key_part, loc[2:])) if name else ".".join(loc) or "settings"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        if loc[-1:] == ("database_url",) and isinstance(value, str):
            value = mask_url(value)  # never echo a password
        lines.append(f"{key}: {msg[:1].lower() + msg[1:]} (got {echo(value)})")
    if not lines:
        return f"invalid settings: {exc}"
    return ("invalid setting " if len(lines) == 1 else "invalid settings: ") + "; ".join(lines)
