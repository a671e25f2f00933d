"""The sensor validation spec: versioned YAML of field and cross-field rules, run as polars checks.

A spec (``specs/sensor_validation_spec_v2.yaml`` by default) is loaded into typed models and
checked at load: a bad spec raises :class:`~chrono.core.errors.ConfigError` naming the file, the
key (``fields.temperature.min``) and the fix. :func:`validate` then runs every rule over a whole
batch as one pass of polars expressions and splits the batch into valid and invalid readings.

Rule ids are ``<field>.<check>`` (check: ``required``, ``type``, ``min``, ``max``, ``pattern``,
``allowed``) and the ``id`` of each cross-field rule. Semantics every check shares:

* An empty string counts as missing, like null. A null value whose ``_raw_<field>`` text column
  (optional, written by sources that keep the text of values they could not cast) is non-empty
  fails ``<field>.type`` instead of ``<field>.required``.
* Checks other than ``required`` and ``type`` only look at present, well-typed values.
* ``min``/``max`` are inclusive bounds; anomaly thresholds are crossed strictly outside them.
* ``pattern`` is a search (anchor it with ``^...$``) in polars' (Rust) regex syntax.
* ``datetime`` values are ISO 8601 with ``T`` or a space, optional fractional seconds and an
  optional offset (``Z``, ``±HH:MM``, ``±HHMM``, ``±HH``); times without one are read in
  ``naive_timezone``. They become ``Datetime("us", "UTC")``.

Messages name the rule's constants only (bounds, units, field names), never a reading's value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from chrono.core.config import StrictModel
from chrono.core.errors import ConfigError, bounded
from chrono.core.logging import log_event
from chrono.sensors.model import ANOMALOUS, EVENT_TIME, READING_SCHEMA

DEFAULT_SPEC_PATH: Path = Path(__file__).parent / "specs" / "sensor_validation_spec_v2.yaml"
"""The packaged default spec."""

RAW_PREFIX = "_raw_"
"""``_raw_<field>``: optional String column with the text a source could not cast."""

ERROR_STRUCT = pl.Struct({"rule_id": pl.String(), "field": pl.String(), "message": pl.String()})
"""One failed rule of a reading."""
ERRORS_DTYPE = pl.List(ERROR_STRUCT)
"""Type of the ``errors`` column of invalid readings: every failed rule of the row."""

FieldType = Literal["integer", "float", "string", "datetime", "boolean"]
_NUMERIC: tuple[str, ...] = ("integer", "float")
_CHECKS: tuple[str, ...] = ("required", "type", "min", "max", "pattern", "allowed")
_RULE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MESSAGE_CHARS = 120


# --- spec models -------------------------------------------------------------------------------


class SpecProblem(ValueError):
    """A semantic problem in a spec: the key (relative to the model raising it), what, the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}; fix: {fix}" if key else f"{problem}; fix: {fix}")


def _scalar(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    raise ValueError("must be a number, a string or a boolean")


Scalar = Annotated[bool | int | float | str, PlainValidator(_scalar)]
"""A constant in a spec (allowed value, condition operand), kept as YAML typed it."""


class _SpecModel(StrictModel):
    # Frozen: compiled checks are cached on the spec, so it must not change after load.
    model_config = ConfigDict(frozen=True)


def _bounds_problem(low: float | None, high: float | None) -> SpecProblem | None:
    for key, value in (("min", low), ("max", high)):
        if value is not None and math.isnan(value):
            return SpecProblem(key, "is not a number", "write a number")
    if low is not None and high is not None and low > high:
        return SpecProblem("min", f"min {_fmt(low)} is above max {_fmt(high)}",
                           "lower min or raise max")
    return None


def _constant_problem(field_type: str, value: Any) -> str | None:
    """Why ``value`` cannot be compared with a ``field_type`` value, or None when it can."""
    if field_type == "integer":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and (
            float(value).is_integer())
    elif field_type == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif field_type == "string":
        ok = isinstance(value, str)
    elif field_type == "boolean":
        ok = isinstance(value, bool)
    else:
        return f"{field_type} fields only take is_null tests"
    return None if ok else f"is not {_article(field_type)}"


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _regex_problem(pattern: str) -> str | None:
    # Compile with polars itself: its Rust regex syntax (no look-around, no backreferences)
    # differs from Python's `re`, and only the engine that runs the check can judge.
    try:
        pl.Series([""], dtype=pl.String()).str.contains(pattern)
    except pl.exceptions.PolarsError:
        return "is not a valid regular expression (Rust syntax: no look-around or backreferences)"
    return None


class Bound(_SpecModel):
    """An anomaly threshold: values strictly below ``min`` or above ``max`` are anomalous."""

    min: float | None = None
    """Lowest normal value; unset: no lower threshold."""
    max: float | None = None
    """Highest normal value; unset: no upper threshold."""

    @model_validator(mode="after")
    def _check(self) -> Bound:
        if self.min is None and self.max is None:
            raise SpecProblem("", "sets neither min nor max", "set min, max or both")
        problem = _bounds_problem(self.min, self.max)
        if problem:
            raise problem
        return self


class Condition(_SpecModel):
    """One test on one field; exactly one of ``equals``, ``not_equals``, ``is_null``, ``in`` or a
    range (``min`` and/or ``max``, inclusive)."""

    # `in` is a Python keyword: the attribute is `in_`, YAML and dumps say `in`.
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    field: str
    """Field of the spec the test reads."""
    equals: Scalar | None = None
    """Holds when the value equals this constant."""
    not_equals: Scalar | None = None
    """Holds when the value differs from this constant."""
    is_null: bool | None = None
    """``true``: holds when the value is missing; ``false``: when it is present."""
    in_: list[Scalar] | None = Field(default=None, alias="in")
    """Holds when the value is one of these constants (YAML key ``in``)."""
    min: float | None = None
    """Holds when the value is at least this (numeric fields)."""
    max: float | None = None
    """Holds when the value is at most this (numeric fields)."""

    @model_validator(mode="after")
    def _check(self) -> Condition:
        tests = [self.equals, self.not_equals, self.is_null, self.in_,
                 self.min if self.min is not None else self.max]
        if sum(test is not None for test in tests) != 1:
            raise SpecProblem("", "needs exactly one test",
                              "keep one of equals, not_equals, is_null, in, or min/max")
        if self.in_ is not None and not self.in_:
            raise SpecProblem("in", "is empty", "list at least one value")
        problem = _bounds_problem(self.min, self.max)
        if problem:
            raise problem
        return self

    @property
    def operator(self) -> str:
        """Which test this is: ``equals``, ``not_equals``, ``is_null``, ``in`` or ``range``."""
        for name in ("equals", "not_equals", "is_null"):
            if getattr(self, name) is not None:
                return name
        return "in" if self.in_ is not None else "range"

    def constants(self) -> list[tuple[str, Any]]:
        """(key, constant) pairs compared against the field's values, for type checks."""
        if self.equals is not None:
            return [("equals", self.equals)]
        if self.not_equals is not None:
            return [("not_equals", self.not_equals)]
        if self.in_ is not None:
            return [(f"in.{i}", value) for i, value in enumerate(self.in_)]
        return []


class FieldSpec(_SpecModel):
    """Checks on one column of a reading."""

    type: FieldType
    """Value type: ``integer``, ``float``, ``string``, ``datetime`` (ISO 8601 text) or
    ``boolean``."""
    required: bool = False
    """A missing (null or empty) value fails ``<field>.required``; optional fields may be
    missing."""
    min: float | None = None
    """Lowest valid value, inclusive (integer and float fields)."""
    max: float | None = None
    """Highest valid value, inclusive (integer and float fields)."""
    unit: str | None = None
    """Unit of the value, quoted in messages (``above max 125 celsius``)."""
    pattern: str | None = None
    """Regular expression the value must contain a match of (string fields; anchor with
    ``^...$``)."""
    allowed: list[Scalar] | None = None
    """The only values accepted (not for datetime fields)."""
    description: str | None = None
    """What the field means, for people reading the spec."""

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        if self.type not in _NUMERIC:
            for key in ("min", "max"):
                if getattr(self, key) is not None:
                    raise SpecProblem(key, f"applies to integer and float fields, not {self.type}",
                                      f"remove {key} or change type")
        problem = _bounds_problem(self.min, self.max)
        if problem:
            raise problem
        if self.pattern is not None:
            if self.type != "string":
                raise SpecProblem("pattern", f"applies to string fields, not {self.type}",
                                  "remove pattern or change type")
            why = _regex_problem(self.pattern)
            if why:
                raise SpecProblem("pattern", why, "fix the expression")
        if self.allowed is not None:
            if self.type == "datetime":
                raise SpecProblem("allowed", "does not apply to datetime fields", "remove it")
            if not self.allowed:
                raise SpecProblem("allowed", "is empty", "list at least one value or remove it")
            for i, value in enumerate(self.allowed):
                why = _constant_problem(self.type, value)
                if why:
                    raise SpecProblem(f"allowed.{i}", why, f"write {_article(self.type)} value")
        return self


class CrossFieldRule(_SpecModel):
    """Where ``when`` holds, ``then`` must hold; where it does not, ``otherwise`` (if set) must.

    A rule is only judged where the fields its tests read are present (``is_null`` tests judge
    missing values too), so a missing value fails its own ``<field>.required``, not this rule.
    """

    id: str
    """Rule id reported in ``errors`` and ``rule_counts``; unique, letters, digits and ``_.:-``."""
    description: str
    """What the rule asserts, for people reading the spec."""
    when: Condition
    """Where the rule applies."""
    then: Condition
    """Must hold where ``when`` holds."""
    otherwise: Condition | None = None
    """Must hold where ``when`` does not hold; unset: nothing is required there."""

    @model_validator(mode="after")
    def _check(self) -> CrossFieldRule:
        if not _RULE_ID.match(self.id):
            raise SpecProblem("id", "must be 1-64 letters, digits or _.:-",
                              "rename the rule")
        return self

    def conditions(self) -> list[tuple[str, Condition]]:
        """(key, condition) for ``when``, ``then`` and, when set, ``otherwise``."""
        parts = [("when", self.when), ("then", self.then)]
        return parts + ([("otherwise", self.otherwise)] if self.otherwise else [])


class AnomalySpec(_SpecModel):
    """When a valid reading counts as anomalous (``_anomalous``)."""

    flag_field: str | None = "anomaly_flag"
    """Integer or boolean field whose value 1 (true) marks a reading the sensor flagged; null:
    only thresholds count."""
    thresholds: dict[str, Bound] = Field(default_factory=dict)
    """Numeric field -> normal range; a value outside it is anomalous (missing values are not)."""


class ValidationSpec(_SpecModel):
    """Root of a validation spec YAML."""

    version: str
    """Spec version, stamped on invalid readings (``spec_version``) and in lineage."""
    fields: dict[str, FieldSpec]
    """Column name -> its checks; only these columns are validated."""
    rules: list[CrossFieldRule] = Field(default_factory=list)
    """Cross-field rules, in the order their failures are listed."""
    anomaly: AnomalySpec
    """When a valid reading is anomalous."""
    naive_timezone: str = "UTC"
    """IANA zone that datetime values without an offset are read in."""

    # Compiled checks per batch schema; see _plan_for.
    _plans: _PlanCache = PrivateAttr(default_factory=lambda: _PlanCache())

    @model_validator(mode="after")
    def _check(self) -> ValidationSpec:
        if not self.version.strip():
            raise SpecProblem("version", "is empty", 'write a version such as "2.0.0"')
        try:
            ZoneInfo(self.naive_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SpecProblem("naive_timezone", "is not an IANA time zone",
                              "write a zone such as UTC or Europe/Berlin") from None
        field_rule_ids = {f"{name}.{check}" for name in self.fields for check in _CHECKS}
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise SpecProblem(f"rules.{i}.id", f"duplicate rule id '{rule.id}'",
                                  "give each rule its own id")
            if rule.id in field_rule_ids:
                raise SpecProblem(f"rules.{i}.id", f"'{rule.id}' is the id of a field check",
                                  "rename the rule")
            seen.add(rule.id)
            for part, cond in rule.conditions():
                self._check_condition(f"rules.{i}.{part}", cond)
        self._check_anomaly()
        return self

    def _check_condition(self, key: str, cond: Condition) -> None:
        spec = self.fields.get(cond.field)
        if spec is None:
            raise SpecProblem(f"{key}.field", f"unknown field '{cond.field}'",
                              "name a field listed under fields")
        if cond.operator == "range" and spec.type not in _NUMERIC:
            raise SpecProblem(f"{key}.{'min' if cond.min is not None else 'max'}",
                              f"range tests need a numeric field, '{cond.field}' is {spec.type}",
                              "use equals, not_equals, in or is_null")
        for sub, value in cond.constants():
            why = _constant_problem(spec.type, value)
            if why:
                fix = ("use is_null" if spec.type == "datetime"
                       else f"write {_article(spec.type)} value or use is_null")
                raise SpecProblem(f"{key}.{sub}", f"{why} ('{cond.field}' is {spec.type})", fix)

    def _check_anomaly(self) -> None:
        flag = self.anomaly.flag_field
        if flag is not None:
            spec = self.fields.get(flag)
            if spec is None or spec.type not in ("integer", "boolean"):
                raise SpecProblem("anomaly.flag_field",
                                  f"'{flag}' is not an integer or boolean field of the spec",
                                  "declare it under fields or set flag_field: null")
        for name in self.anomaly.thresholds:
            spec = self.fields.get(name)
            if spec is None or spec.type not in _NUMERIC:
                raise SpecProblem(f"anomaly.thresholds.{name}",
                                  "is not an integer or float field of the spec",
                                  "declare it under fields or remove the threshold")

    def rule_ids(self) -> list[str]:
        """Every rule id this spec can report, in the order failures are listed."""
        ids = [rule_id for name, spec in self.fields.items()
               for rule_id in _field_rule_ids(name, spec)]
        return ids + [rule.id for rule in self.rules]


# --- loading -----------------------------------------------------------------------------------


def load_spec(path: Path | None = None) -> ValidationSpec:
    """Load and check a validation spec YAML; ``None`` loads :data:`DEFAULT_SPEC_PATH`."""
    p = Path(path) if path is not None else DEFAULT_SPEC_PATH
    if not p.is_file():
        raise ConfigError("spec_missing",
                          f"{p}: file not found; pass the path of a validation spec YAML")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("spec_yaml", f"{p}: not UTF-8 text; save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            "spec_yaml", f"{p}: not valid YAML{where} ({type(exc).__name__}); fix the syntax"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError("spec_yaml", f"{p}: top level must be a mapping with keys version, "
                                       "fields, rules, anomaly")
    try:
        spec = ValidationSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("spec_invalid", _describe_errors(p, exc)) from None
    log_event("sensor_spec_loaded", version=spec.version, fields_count=len(spec.fields),
              rules_count=len(spec.rules))
    return spec


def _describe_errors(path: Path, err: ValidationError) -> str:
    """``<file>: key '<a.b.c>': <problem>; fix: <fix>`` for the first error, then a count."""
    errors = err.errors()
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    problem = first["msg"]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SpecProblem):
        loc += [part for part in cause.key.split(".") if part]
        problem, fix = cause.problem, cause.fix
    elif first["type"] == "extra_forbidden":
        keys = _keys_at(first["loc"][:-1])
        problem = "unknown key"
        fix = f"remove it or use one of: {', '.join(keys)}" if keys else "remove it"
    elif first["type"] == "missing":
        problem, fix = "is required", "add it"
    else:
        problem = problem.removeprefix("Value error, ")
        fix = "quote it" if first["type"] == "string_type" else "correct the value"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: key '{'.'.join(loc)}': {problem}; fix: {fix}{more}"


def _keys_at(loc: Sequence[int | str]) -> list[str]:
    """Keys allowed in the mapping at ``loc`` of a spec, found by walking the model types."""
    current: Any = ValidationSpec
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = next((f for n, f in current.model_fields.items()
                         if part in (n, f.alias)), None)
            if info is None:
                return []
            current = info.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) is list:
            current = get_args(current)[0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    # `X | None` -> X, so that optional sub-models can be walked into.
    if get_origin(annotation) in (Union, UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return arms[0] if len(arms) == 1 else annotation
    return annotation


# --- validation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationResult:
    """One batch split by the spec; every input row is in exactly one of the two frames."""

    valid: pl.DataFrame
    """Passing rows in input order: input columns plus ``_event_time`` (when the spec has a
    datetime field ``timestamp``) and ``_anomalous``."""
    invalid: pl.DataFrame
    """Failing rows in input order: input columns plus ``errors`` (:data:`ERRORS_DTYPE`) and
    ``spec_version``."""
    rule_counts: dict[str, int]
    """Rule id -> rows of this batch failing it; every rule of the spec, zeros included."""


def validate(batch: pl.DataFrame, spec: ValidationSpec) -> ValidationResult:
    """Run every rule of ``spec`` over ``batch`` in one vectorised pass and split it."""
    plan = _plan_for(spec, batch.schema)
    frame = batch.with_columns(
        _to_utc(batch[name], spec.naive_timezone).alias(temp) for name, temp in plan.datetimes
    )
    checked = (
        frame.lazy()
        .with_columns(plan.typed)
        .with_columns(*plan.fails, *plan.outputs)
        .with_columns(plan.failed.alias(_FAILED))
        .collect()
    )
    totals = checked.select(pl.col(plan.fail_names).sum()).row(0) if plan.fail_names else ()
    rule_counts = dict.fromkeys(spec.rule_ids(), 0)
    for check, total in zip(plan.checks, totals, strict=True):
        rule_counts[check.rule_id] += int(total)

    failed = checked[_FAILED]
    out_names = [expr.meta.output_name() for expr in plan.outputs]
    valid = checked.select(*(c for c in batch.columns if c not in out_names), *out_names)
    failing = checked.filter(failed)
    invalid = failing.select(c for c in batch.columns if c not in ("errors", "spec_version"))
    seen = [name for name, total in zip(plan.fail_names, totals, strict=True) if total]
    invalid = invalid.with_columns(
        _error_lists(failing, seen, plan.errors),
        pl.lit(spec.version, dtype=pl.String()).alias("spec_version"),
    )
    return ValidationResult(valid=valid.filter(~failed), invalid=invalid,
                            rule_counts=rule_counts)


def _error_lists(failing: pl.DataFrame, fail_names: list[str],
                 lookup: pl.DataFrame) -> pl.Series:
    """The ``errors`` list of each failing row: its failed checks, in spec order.

    ``fail_names`` are the check columns that fail somewhere in the batch, in spec order.
    """
    if failing.is_empty():
        return pl.Series("errors", [], dtype=ERRORS_DTYPE)
    # Long form (row, failed check) is much cheaper than concatenating a list per check.
    per_row = (
        failing.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"), *fail_names)
        .unpivot(index="row", on=fail_names, variable_name="check", value_name="failed")
        .filter(pl.col("failed"))
        .join(lookup, on="check", how="left", maintain_order="left")
        .sort("row", maintain_order=True)
        .group_by("row", maintain_order=True)
        .agg(pl.col("error").alias("errors"))
    )
    return per_row["errors"].cast(ERRORS_DTYPE)


# --- compilation -------------------------------------------------------------------------------

_TEMP = "__chrono_spec_"
_FAILED = f"{_TEMP}failed"
_UTC = pl.Datetime("us", "UTC")
_PLAN_CACHE_SIZE = 16

# What a datetime may look like, in order; the first format that fits wins. `%#z` takes `Z`,
# `z`, `±HH:MM`, `±HHMM` and `±HH`; `%.f` also matches no fraction at all.
_DATETIME_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%Y-%m-%dT%H:%M:%S%.f%#z", True),
    ("%Y-%m-%d %H:%M:%S%.f%#z", True),
    ("%Y-%m-%dT%H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M:%S%.f", False),
)

# Values of this shape go through Arrow's ISO 8601 cast, which agrees with the formats above on
# them and is ~15x faster than chrono's strptime. Every field is range-checked so that Arrow
# never sees a value the formats would reject (only day 31 of a short month gets through, and
# then Arrow refuses the whole cast and the formats decide).
_ISO_DATE_TIME = (r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ]"
                  r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?")
_ISO_OFFSET = r"(?:Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)"
_ISO_SHAPE = f"^{_ISO_DATE_TIME}{_ISO_OFFSET}?$"
# What the formats may decide: two-digit fields, up to 9 fraction digits, `z` or `Z`.
_ISO_LOOSE = (r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?"
              r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$")
_ISO_OFFSET_END = f"{_ISO_OFFSET}$"

_TYPE_MESSAGES = {
    "integer": "not an integer", "float": "not a number", "string": "not a string",
    "datetime": "not a datetime", "boolean": "not a boolean",
}


@dataclass(frozen=True)
class _Check:
    rule_id: str
    field: str
    message: str
    fails: pl.Expr


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`validate` runs for one spec over one batch schema."""

    datetimes: tuple[tuple[str, str], ...]
    """(field, temp column) parsed eagerly before the lazy pass."""
    typed: tuple[pl.Expr, ...]
    """Typed values (temp columns) of non-string fields and of string fields held as non-text."""
    checks: tuple[_Check, ...]
    fail_names: tuple[str, ...]
    """Temp Boolean column of each check: the row fails it."""
    fails: tuple[pl.Expr, ...]
    failed: pl.Expr
    """The row fails any check."""
    outputs: tuple[pl.Expr, ...]
    """``_event_time`` and ``_anomalous``."""
    errors: pl.DataFrame
    """Lookup ``check`` (fail column name) -> ``error`` struct."""

    @classmethod
    def build(cls, datetimes: list[tuple[str, str]], typed: list[pl.Expr],
              checks: list[_Check], outputs: tuple[pl.Expr, ...]) -> _Plan:
        names = tuple(f"{_TEMP}fail{i}" for i in range(len(checks)))
        errors = pl.DataFrame({
            "check": names,
            "rule_id": [c.rule_id for c in checks],
            "field": [c.field for c in checks],
            "message": [c.message for c in checks],
        }, schema={"check": pl.String(), **ERROR_STRUCT.to_schema()})
        return cls(
            datetimes=tuple(datetimes), typed=tuple(typed), checks=tuple(checks),
            fail_names=names,
            fails=tuple(c.fails.fill_null(False).alias(n)
                        for c, n in zip(checks, names, strict=True)),
            failed=pl.any_horizontal(*names) if names else pl.lit(False),
            outputs=outputs,
            errors=errors.select("check", pl.struct("rule_id", "field", "message").alias("error")),
        )


@dataclass(eq=False)
class _PlanCache:
    """Plans of one spec object per batch schema (columns present and their types)."""

    owner: int = -1
    """``id`` of the spec the plans were built for."""
    plans: dict[tuple[tuple[str, str], ...], _Plan] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        # A cache is no part of a spec's value: specs with equal rules compare equal.
        return isinstance(other, _PlanCache)

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> _PlanCache:
        # A copied spec (model_copy) builds its own plans: they may describe another spec.
        return _PlanCache(owner=-1)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_PlanCache, (-1,))


def _plan_for(spec: ValidationSpec, schema: pl.Schema) -> _Plan:
    """The compiled checks for ``spec`` over batches of ``schema``, built once and cached."""
    cache = spec._plans
    if cache.owner != id(spec):
        # The owner id guards against a cache inherited by a copy of the spec.
        cache = _PlanCache(owner=id(spec))
        spec._plans = cache
    relevant = [name for f in spec.fields for name in (f, RAW_PREFIX + f) if name in schema]
    key = tuple((name, str(schema[name])) for name in relevant)
    plan = cache.plans.get(key)
    if plan is None:
        if len(cache.plans) >= _PLAN_CACHE_SIZE:
            cache.plans.pop(next(iter(cache.plans)))
        plan = cache.plans[key] = _compile(spec, schema)
    return plan


@dataclass(frozen=True)
class _Value:
    """How one field reads in a batch: its typed value, whether it is present, whether the
    source gave anything at all (present or not)."""

    value: pl.Expr
    present: pl.Expr
    given: pl.Expr


def _compile(spec: ValidationSpec, schema: pl.Schema) -> _Plan:
    datetimes: list[tuple[str, str]] = []
    typed: list[pl.Expr] = []
    retyped: list[pl.Expr] = []
    values: dict[str, _Value] = {}
    for name, fspec in spec.fields.items():
        temp = f"{_TEMP}v_{name}"
        dtype = schema.get(name)
        source = pl.col(name)
        if dtype is None:
            value = pl.lit(None, dtype=_POLARS_TYPES.get(fspec.type, _UTC))
            given = pl.lit(False)
        elif dtype == pl.String:
            given = source.is_not_null() & (source.str.len_bytes() > 0)
            value = source
        else:
            given = source.is_not_null()
            value = source
        if dtype is not None and fspec.type == "datetime":
            datetimes.append((name, temp))
            value = pl.col(temp)
        elif dtype is not None and fspec.type != "string":
            typed.append(_typed_value(fspec.type, source, dtype).alias(temp))
            value = pl.col(temp)
            if name not in READING_SCHEMA and dtype != _POLARS_TYPES.get(fspec.type):
                # Extra fields (outside the reading columns sources conform) reach valid
                # records with the spec's type, not as the text a CSV gave.
                retyped.append(pl.col(temp).alias(name))
        elif dtype is not None and dtype != pl.String:
            typed.append(source.cast(pl.String(), strict=False).alias(temp))
            value = pl.col(temp)
        present = given & value.is_not_null()
        raw_dtype = schema.get(RAW_PREFIX + name)
        if raw_dtype is not None:
            raw = pl.col(RAW_PREFIX + name)
            raw_given = raw.is_not_null()
            if raw_dtype == pl.String:
                raw_given = raw_given & (raw.str.len_bytes() > 0)
            given = given | raw_given
        values[name] = _Value(value, present.fill_null(False), given.fill_null(False))

    checks = [check for name, fspec in spec.fields.items()
              for check in _field_checks(name, fspec, values[name])]
    for rule in spec.rules:
        checks.extend(_rule_checks(rule, spec, values))
    return _Plan.build(datetimes, typed, checks, (*_outputs(spec, values), *retyped))


def _field_rule_ids(name: str, spec: FieldSpec) -> list[str]:
    """Ids of the checks one field has, in the order failures are listed."""
    wanted = {"required": spec.required, "type": True, "min": spec.min is not None,
              "max": spec.max is not None, "pattern": spec.pattern is not None,
              "allowed": spec.allowed is not None}
    return [f"{name}.{check}" for check in _CHECKS if wanted[check]]


def _field_checks(name: str, spec: FieldSpec, v: _Value) -> list[_Check]:
    unit = f" {spec.unit}" if spec.unit else ""
    fails: dict[str, tuple[str, pl.Expr]] = {
        "required": ("missing", ~v.given),
        "type": (_TYPE_MESSAGES[spec.type], v.given & ~v.present),
    }
    if spec.min is not None:
        fails["min"] = (f"below min {_fmt(spec.min)}{unit}", v.present & (v.value < spec.min))
    if spec.max is not None:
        fails["max"] = (f"above max {_fmt(spec.max)}{unit}", v.present & (v.value > spec.max))
    if spec.pattern is not None:
        fails["pattern"] = ("does not match pattern",
                            v.present & ~v.value.str.contains(spec.pattern))
    if spec.allowed is not None:
        allowed = _constants(spec.type, spec.allowed)
        fails["allowed"] = ("not in allowed set", v.present & ~v.value.is_in(allowed))
    return [
        _Check(rule_id, name, *fails[rule_id.rsplit(".", 1)[1]])
        for rule_id in _field_rule_ids(name, spec)
    ]


def _constants(field_type: str, values: Sequence[Any]) -> pl.Series:
    """Spec constants as a one-row list Series, for ``is_in`` against a typed column."""
    return pl.Series([_coerce(field_type, x) for x in values],
                     dtype=_POLARS_TYPES[field_type]).implode()


_POLARS_TYPES: dict[str, pl.DataType] = {
    "integer": pl.Int64(), "float": pl.Float64(), "string": pl.String(), "boolean": pl.Boolean(),
}


def _coerce(field_type: str, value: Any) -> Any:
    if field_type == "integer":
        return int(value)
    if field_type == "float":
        return float(value)
    return value


def _typed_value(field_type: str, source: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``source`` as the field's polars type; null where it cannot be (a ``.type`` failure)."""
    if field_type == "integer":
        if dtype.is_integer():
            return source.cast(pl.Int64(), strict=False)
        if dtype.is_float():
            whole = source.is_finite() & (source.floor() == source)
            return pl.when(whole).then(source.cast(pl.Int64(), strict=False))
        if dtype == pl.String:
            return source.str.strip_chars().cast(pl.Int64(), strict=False)
        return source.cast(pl.Int64(), strict=False)
    if field_type == "float":
        text = source.str.strip_chars() if dtype == pl.String else source
        # NaN is no measurement: treat it like text that is not a number.
        return text.cast(pl.Float64(), strict=False).fill_nan(None)
    # boolean
    if dtype == pl.Boolean:
        return source
    if dtype.is_integer():
        return pl.when(source.is_in([0, 1])).then(source.cast(pl.Boolean()))
    if dtype == pl.String:
        words = {"true": True, "false": False, "1": True, "0": False}
        return source.str.strip_chars().str.to_lowercase().replace_strict(
            words, default=None, return_dtype=pl.Boolean())
    return pl.lit(None, dtype=pl.Boolean())


def _to_utc(values: pl.Series, naive_timezone: str) -> pl.Series:
    """A datetime field as ``Datetime("us", "UTC")``; null where it is not a datetime."""
    dtype = values.dtype
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return _localize(values.dt.cast_time_unit("us"), naive_timezone)
        return values.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    if dtype == pl.Date:
        return _localize(values.cast(pl.Datetime("us")), naive_timezone)
    text = values if dtype == pl.String else values.cast(pl.String(), strict=False)
    shaped = text.str.contains(_ISO_SHAPE).fill_null(False)
    aware = shaped & text.str.contains(_ISO_OFFSET_END)
    parsed = _arrow_parse(text, aware, "UTC")
    naive = _arrow_parse(text, shaped & ~aware, None)
    if naive is not None:
        naive = _localize(naive, naive_timezone)
        parsed = naive if parsed is None else parsed.fill_null(naive)
    if parsed is None:
        parsed = _nulls(len(text))
    pending = text.is_not_null() & (text.str.len_bytes() > 0) & parsed.is_null()
    if pending.any():
        # The formats decide every value the fast path left out, so what parses never depends
        # on which other values share the batch; they only run on those few values.
        rows = pending.arg_true()
        parsed = parsed.scatter(rows, _parse_with_formats(text.gather(rows), naive_timezone))
    return parsed.alias(values.name)


def _arrow_parse(text: pl.Series, rows: pl.Series, zone: str | None) -> pl.Series | None:
    """Arrow's ISO 8601 cast over ``rows`` (others null): a strict, fast parser. None when no row
    is selected or the cast refuses a value (an impossible date such as 02-30 that the shape
    check let through): the formats of :func:`_parse_with_formats` then decide."""
    if not rows.any():
        return None
    selected = pl.DataFrame({"text": text, "rows": rows}).select(
        pl.when(pl.col("rows")).then(pl.col("text"))).to_series()
    try:
        stamps = pc.cast(selected.to_arrow(), pa.timestamp("us", zone))
    except pa.ArrowInvalid:
        return None
    out = pl.from_arrow(stamps)
    assert isinstance(out, pl.Series)
    return out


def _parse_with_formats(text: pl.Series, naive_timezone: str) -> pl.Series:
    """The definitive parse: explicit formats tried in order, the first that fits wins."""
    # strptime alone also takes one-digit fields and a space before the offset: not ISO.
    text = pl.DataFrame({"text": text}).select(
        pl.when(pl.col("text").str.contains(_ISO_LOOSE)).then(pl.col("text"))).to_series()
    parsed = _nulls(len(text))
    for fmt, has_offset in _DATETIME_FORMATS:
        attempt = text.str.to_datetime(fmt, time_unit="us", strict=False)
        if not has_offset:
            attempt = _localize(attempt, naive_timezone)
        parsed = parsed.fill_null(attempt)
    return parsed


def _nulls(length: int) -> pl.Series:
    return pl.Series("", [], dtype=_UTC).extend_constant(None, length)


def _localize(naive: pl.Series, zone: str) -> pl.Series:
    # A wall time that falls in a DST gap does not exist: not a datetime. One that occurs twice
    # (clocks going back) is read as the earlier instant.
    return naive.dt.replace_time_zone(
        zone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def _holds(cond: Condition, v: _Value, field_type: str) -> pl.Expr:
    """Whether ``cond`` holds; only meaningful where :func:`_judged` is true."""
    op = cond.operator
    if op == "is_null":
        return ~v.present if cond.is_null else v.present
    if op == "equals":
        return v.value == _coerce(field_type, cond.equals)
    if op == "not_equals":
        return v.value != _coerce(field_type, cond.not_equals)
    if op == "in":
        return v.value.is_in(_constants(field_type, cond.in_ or []))
    held = pl.lit(True)
    if cond.min is not None:
        held = held & (v.value >= cond.min)
    if cond.max is not None:
        held = held & (v.value <= cond.max)
    return held


def _judged(cond: Condition, v: _Value) -> pl.Expr:
    # A missing value is its field's own failure (or a legal gap), not this rule's.
    return pl.lit(True) if cond.operator == "is_null" else v.present


def _rule_checks(rule: CrossFieldRule, spec: ValidationSpec,
                 values: dict[str, _Value]) -> list[_Check]:
    def judged_and_fails(cond: Condition) -> pl.Expr:
        v = values[cond.field]
        return _judged(cond, v) & ~_holds(cond, v, spec.fields[cond.field].type)

    when_v = values[rule.when.field]
    when_known = _judged(rule.when, when_v)
    when_holds = _holds(rule.when, when_v, spec.fields[rule.when.field].type)
    checks = [_Check(
        rule.id, rule.then.field, _message(f"{_render(rule.when)} requires {_render(rule.then)}"),
        when_known & when_holds & judged_and_fails(rule.then),
    )]
    if rule.otherwise is not None:
        checks.append(_Check(
            rule.id, rule.otherwise.field,
            _message(f"{_render(rule.when, negate=True)} requires {_render(rule.otherwise)}"),
            when_known & ~when_holds & judged_and_fails(rule.otherwise),
        ))
    return checks


def _outputs(spec: ValidationSpec, values: dict[str, _Value]) -> tuple[pl.Expr, ...]:
    outputs = []
    stamp = spec.fields.get("timestamp")
    if stamp is not None and stamp.type == "datetime":
        outputs.append(values["timestamp"].value.cast(_UTC).alias(EVENT_TIME))
    crossed = []
    flag = spec.anomaly.flag_field
    if flag is not None:
        v = values[flag]
        crossed.append(v.present & (v.value.cast(pl.Int64()) == 1))
    for name, bound in spec.anomaly.thresholds.items():
        v = values[name]
        if bound.min is not None:
            crossed.append(v.present & (v.value < bound.min))
        if bound.max is not None:
            crossed.append(v.present & (v.value > bound.max))
    anomalous = pl.any_horizontal(crossed).fill_null(False) if crossed else pl.lit(False)
    outputs.append(anomalous.alias(ANOMALOUS))
    return tuple(outputs)


# --- messages ----------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _render(cond: Condition, negate: bool = False) -> str:
    """A condition as text, from spec constants only (long value lists are summarised)."""
    f, op = cond.field, cond.operator
    if op == "is_null":
        return f"{f} is {'' if cond.is_null != negate else 'not '}null"
    if op in ("equals", "not_equals"):
        constant = cond.equals if op == "equals" else cond.not_equals
        return f"{f} {'=' if (op == 'equals') != negate else '!='} {_fmt(constant)}"
    if op == "in":
        options = cond.in_ or []
        listed = (", ".join(_fmt(x) for x in options) if len(options) <= 5
                  else f"{len(options)} values")
        return f"{f} {'not in' if negate else 'in'} {{{listed}}}"
    if cond.min is not None and cond.max is not None:
        span = f"[{_fmt(cond.min)}, {_fmt(cond.max)}]"
        return f"{f} {'outside' if negate else 'in'} {span}"
    if cond.min is not None:
        return f"{f} {'<' if negate else '>='} {_fmt(cond.min)}"
    return f"{f} {'>' if negate else '<='} {_fmt(cond.max)}"


def _message(text: str) -> str:
    return bounded(text, _MESSAGE_CHARS)
