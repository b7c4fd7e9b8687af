"""Header and value aliases: the data file that lets Chinese Excel exports load unchanged.

Why a data file and not code: every CRM export names its columns a little differently, and users
must be able to add their own names (env CRM_ALIASES) without a release (contract.md §1).
Consumers: `readers` (header matching) and `validate` (enum, currency and boolean values).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm.ingest.errors import AliasesError, SourceError
from crm.schemas import Entity

DEFAULT_ALIASES_PATH = Path(__file__).resolve().parent.parent / "aliases.yaml"
ALIASES_ENV_VAR = "CRM_ALIASES"
COMMON_SCOPE = "common"
BOOLEAN_KEY = "boolean"

_SEPARATORS = re.compile(r"[\s\-]+")


def normalise_key(text: str) -> str:
    """The form headers and values are compared in: NFKC, trimmed, lower case.

    NFKC turns full-width letters/digits into half-width ones, so `ＣＵＳＴＯＭＥＲ_ＩＤ` and
    `customer_id` compare equal; inner spaces and hyphens become `_` ("Customer ID").
    """
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    return _SEPARATORS.sub("_", folded)


@dataclass
class Aliases:
    """Header aliases per scope (`common` or an entity name) and value aliases per column.

    Keys are stored normalised (see `normalise_key`); canonical names/values as written.
    """

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)

    def header_target(self, entity_name: str, header: str) -> str | None:
        """The canonical column an (original) header means for this entity, if any alias fits."""
        key = normalise_key(header)
        scoped = self.headers.get(entity_name, {})
        if key in scoped:
            return scoped[key]
        return self.headers.get(COMMON_SCOPE, {}).get(key)

    def value_map(self, column: str) -> dict[str, str]:
        """Normalised alias → canonical value for one column (or `boolean`); empty when none."""
        return self.values.get(column, {})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AliasesError(f"aliases file {path} cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise AliasesError(f"aliases file {path} is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise AliasesError(f"aliases file {path} must be a mapping with 'headers' and 'values'")
    unknown = set(data) - {"headers", "values"}
    if unknown:
        raise AliasesError(f"aliases file {path} has unknown keys {sorted(unknown)}")
    return data


def _section(data: dict[str, Any], name: str, path: Path) -> dict[str, dict[str, str]]:
    """One section as {scope: {normalised alias: canonical}}, checking the shape as it goes."""
    raw = data.get(name) or {}
    if not isinstance(raw, dict):
        raise AliasesError(f"aliases file {path}: '{name}' must be a mapping")
    section: dict[str, dict[str, str]] = {}
    for scope, mapping in raw.items():
        if not isinstance(mapping, dict):
            raise AliasesError(f"aliases file {path}: '{name}.{scope}' must be a mapping")
        entries: dict[str, str] = {}
        for alias, canonical in (mapping or {}).items():
            if not isinstance(canonical, str | int | bool) or isinstance(alias, list | dict):
                raise AliasesError(
                    f"aliases file {path}: '{name}.{scope}.{alias}' must map to a single name"
                )
            entries[normalise_key(str(alias))] = _scalar_text(canonical)
        section[str(scope)] = entries
    return section


def _scalar_text(value: str | int | bool) -> str:
    """YAML may hand back True for an unquoted `true`; aliases are always text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _merge(base: dict[str, dict[str, str]], extra: dict[str, dict[str, str]]) -> None:
    for scope, mapping in extra.items():
        base.setdefault(scope, {}).update(mapping)


def load_aliases(extra_path: Path | None = None) -> Aliases:
    """The shipped aliases, deep-merged with a user's file (an entry of the user's file wins)."""
    aliases = Aliases()
    paths = [DEFAULT_ALIASES_PATH] + ([Path(extra_path)] if extra_path is not None else [])
    for path in paths:
        data = _read_yaml(path)
        _merge(aliases.headers, _section(data, "headers", path))
        _merge(aliases.values, _section(data, "values", path))
    return aliases


def aliases_path_from_env() -> Path | None:
    """The user's aliases file named by CRM_ALIASES, or None when unset/empty."""
    value = (os.environ.get(ALIASES_ENV_VAR) or "").strip()
    return Path(value) if value else None


@dataclass
class HeaderMap:
    """How a source's header row maps onto an entity's columns.

    `positions` pairs each used source position with its canonical column; `width` counts every
    header cell, `named_width` stops at the last non-empty one (Excel pads with empty columns).
    """

    headers: list[str]
    positions: list[tuple[int, str]]
    warnings: list[str]

    @property
    def width(self) -> int:
        return len(self.headers)

    @property
    def named_width(self) -> int:
        named = [i for i, h in enumerate(self.headers) if h.strip()]
        return named[-1] + 1 if named else 0

    @property
    def canonical_columns(self) -> list[str]:
        return [canonical for _, canonical in self.positions]

    def original_record(self, row: list[str]) -> dict[str, str | None]:
        """The row keyed by its original header names (for raw_record), unnamed cells dropped."""
        return {
            header: (row[i] if i < len(row) else None)
            for i, header in enumerate(self.headers)
            if header.strip()
        }

    def canonical_for(self, header: str) -> str | None:
        for pos, canonical in self.positions:
            if self.headers[pos] == header:
                return canonical
        return None


def _canonical_column(header: str, entity: Entity, aliases: Aliases) -> str | None:
    key = normalise_key(header)
    if key in entity.column_names:
        return key
    target = aliases.header_target(entity.name, header)
    return target if target in entity.column_names else None


def _check_headers(
    headers: list[str], positions: list[tuple[int, str]], entity: Entity, display_name: str
) -> None:
    """Missing required columns and two headers meaning one column make a source unusable."""
    by_column: dict[str, list[str]] = {}
    for pos, canonical in positions:
        by_column.setdefault(canonical, []).append(headers[pos])
    for canonical, originals in by_column.items():
        if len(originals) > 1:
            names = " and ".join(f"'{o}'" for o in originals)
            raise SourceError(f"{display_name}: columns {names} both mean '{canonical}'")
    for required in entity.required:
        if required not in by_column:
            found = ", ".join(h for h in headers if h.strip()) or "no columns"
            raise SourceError(
                f"{display_name}: required column '{required}' is missing (found: {found})"
            )


def resolve_headers(
    headers: list[str],
    entity: Entity,
    aliases: Aliases,
    display_name: str,
    *,
    strict: bool = True,
) -> HeaderMap:
    """Match headers case-insensitively (after trimming and NFKC), then through the aliases.

    Unknown headers → a warning each; empty headers → ignored (silently when trailing, the way
    Excel pads a sheet). `strict` (whole header rows) also raises SourceError for a missing
    required column or two headers meaning the same column.
    """
    positions: list[tuple[int, str]] = []
    warnings: list[str] = []
    named_width = HeaderMap(headers, [], []).named_width
    for pos, header in enumerate(headers):
        if not header.strip():
            if pos < named_width:
                warnings.append(f"{display_name}: column {pos + 1} has no header; ignored")
            continue
        canonical = _canonical_column(header, entity, aliases)
        if canonical is None:
            warnings.append(
                f"{display_name}: column '{header.strip()}' is not part of {entity.name}; ignored"
            )
            continue
        positions.append((pos, canonical))
    if strict:
        _check_headers(headers, positions, entity, display_name)
    return HeaderMap(headers=headers, positions=positions, warnings=warnings)
