"""Validate a delivery with Great Expectations: results, quarantine, Data Docs.

For each raw table of a source, the suite ``expectations/<source>_<table>.json`` runs through
GX's SQL execution on the warehouse itself (see :mod:`mlcore.gx_duckdb`), over the rows of the
delivery ``ds`` only: the table is never pulled into Python. Every expectation carries in its
``meta``:

- ``rule``: a short name for the defect it catches (``null user_id``), used in quarantine rows,
  in ``ops.validation_results`` and in error messages;
- ``severity``: ``critical`` or ``warning``;
- ``row_level``: whether the offending rows go to ``quarantine.<source>_<table>``.

GX counts defects but cannot say which rows they are, so each row-level rule is also translated
into a DuckDB predicate here (:func:`rule_sql`). Its counts must equal GX's
``unexpected_count`` (checked for every rule, recorded in the results, asserted in the tests).
For uniqueness rules GX counts every row of a duplicated group while the quarantine keeps the
first occurrence (by file and line) and takes the surplus.

A delivery fails (:class:`ValidationFailed`) when a critical table-level rule fails, or when the
rows breaking critical row-level rules, together with the lines ingest rejected
(``ops.rejected_lines``), exceed ``max_bad_row_share`` of the delivered lines. The results,
the quarantine rows and the Data Docs are written first, so that ops can see why.

Two things a suite may say beyond GX's built-in expectations, for every source:

- a bound that depends on the delivery, as a GX suite parameter ``{"$PARAMETER": name}`` with a
  name of :data:`DELIVERY_PARAMETERS` (``"max_value": {"$PARAMETER": "ds_end_epoch"}``: no
  timestamp after the delivery day). GX gets the values with the run, the SQL binds ``$ds``;
- a reference to another table of the same source: an ``unexpected_rows_expectation`` with
  ``kwargs.column`` and ``meta.references: "raw.<source>_<table>.<column>"`` (the values of
  ``column`` must be among that column's values in the same delivery; nulls are not checked).
  Its GX query is generated (:func:`reference_query`), and it is row-level like any other.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from mlcore.lake import Lake, reports_prefix
from mlcore.sources import SourceSpec, TableSpec
from mlcore.warehouse import ident, table_exists

log = logging.getLogger(__name__)

EXPECTATIONS_ROOT = Path(__file__).resolve().parent.parent / "expectations"
SEVERITIES = ("critical", "warning")
# Lineage columns the batch query and the quarantine need (docs/contracts.md).
REQUIRED_LINEAGE = ("_source_file", "_line", "ds")
# Data Docs builds a static site; this is the page to link from the UI and alerts.
DATA_DOCS_INDEX = "index.html"
# Values of the delivery a suite may use where GX takes a value, as {"$PARAMETER": name}: the
# SQL that computes each from the bound ``$ds``, and its meaning.
DELIVERY_PARAMETERS = {
    "ds_start_epoch": (
        "epoch($ds::date::timestamp)::bigint",
        "unix seconds at the start of the delivery day (UTC)",
    ),
    "ds_end_epoch": (
        "epoch(($ds::date + 1)::timestamp)::bigint",
        "unix seconds at the end of the delivery day: the next midnight (UTC)",
    ),
    "ds_end_time": (
        "($ds::date + 1)::timestamp",
        "the end of the delivery day as a timestamp: the next midnight",
    ),
}
_REFERENCE = re.compile(r"^(raw\.[a-z_][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


class ValidationFailed(RuntimeError):
    """A delivery broke a critical rule. ``str(exc)`` is one line; ``exc.report`` has it all."""

    def __init__(self, message: str, report: ValidationReport | None = None):
        super().__init__(" ".join(message.split()))
        self.report = report


@dataclass
class ValidationReport:
    """What one validation run found, per table.

    ``tables[name]`` holds ``rows`` (of the delivery), ``quarantined`` (rows copied to
    quarantine), ``failed_critical`` (reasons the table fails), ``warnings`` (every other rule
    that found something) and ``rules``: {rule: {severity, row_level, success,
    unexpected_count (GX's), sql_unexpected_count, surplus (uniqueness rules: rows after the
    first occurrence), quarantined}}.
    """

    run_id: str
    ds: dt.date
    source: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_docs_key: str | None = None

    @property
    def failures(self) -> list[str]:
        """One line per failing table: ``raw.<table>: <reasons>``."""
        return [
            f"raw.{self.source}_{name}: {'; '.join(t['failed_critical'])}"
            for name, t in self.tables.items()
            if t["failed_critical"]
        ]

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        """A small JSON-able digest (what the Airflow task returns)."""
        return {
            "run_id": self.run_id,
            "ds": self.ds.isoformat(),
            "source": self.source,
            "data_docs_key": self.data_docs_key,
            "tables": {
                name: {k: t[k] for k in ("rows", "quarantined", "failed_critical", "warnings")}
                for name, t in self.tables.items()
            },
        }


# ---- suites -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One expectation of a suite, with the metadata validation acts on."""

    name: str
    type: str
    kwargs: dict[str, Any]
    severity: str
    row_level: bool
    # (raw table, column) whose values ``kwargs["column"]`` must take (``meta.references``)
    references: tuple[str, str] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the rule reads (its domain and its row condition)."""
        cols = list(self.kwargs.get("column_list") or [])
        if "column" in self.kwargs:
            cols.append(self.kwargs["column"])
        cols.extend(_condition_columns(self.kwargs.get("row_condition")))
        return tuple(dict.fromkeys(cols))


def suite_path(source: str, table: str, root: Path | None = None) -> Path:
    return (root or EXPECTATIONS_ROOT) / f"{source}_{table}.json"


def load_suite(source: str, table: str, root: Path | None = None) -> dict[str, Any]:
    """The suite of ``raw.<source>_<table>`` as GX 1.x suite JSON (a dict)."""
    path = suite_path(source, table, root)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no expectation suite for {source}.{table}: {path}") from None


def with_declared_columns(suite: dict[str, Any], table: TableSpec) -> dict[str, Any]:
    """The suite with its column-set expectation filled from the declared schema.

    A suite's ``expect_table_columns_to_match_set`` names no columns: they are the source
    module's declared columns plus the lineage columns (``TableSpec.raw_columns``), so that
    the schema is written once. A suite that does list them must list exactly those.
    """
    suite = copy.deepcopy(suite)
    declared = list(table.raw_columns)
    for exp in suite["expectations"]:
        if exp.get("type") != "expect_table_columns_to_match_set":
            continue
        kwargs = exp.setdefault("kwargs", {})
        listed = kwargs.get("column_set")
        if listed is not None and sorted(listed) != sorted(declared):
            raise ValueError(
                f"suite {suite['name']!r}: column_set differs from the declared schema "
                f"(leave it out to use the declared columns)"
            )
        kwargs["column_set"] = declared
    return suite


def suite_rules(suite: dict[str, Any]) -> list[Rule]:
    """The suite's expectations as :class:`Rule` s, checked so that a typo fails loudly here."""
    rules = []
    for i, exp in enumerate(suite["expectations"]):
        meta = exp.get("meta") or {}
        where = f"suite {suite['name']!r}, expectation {i} ({exp.get('type')})"
        name, severity, row_level = meta.get("rule"), meta.get("severity"), meta.get("row_level")
        if not name:
            raise ValueError(f"{where}: meta.rule (a short name of the defect) is required")
        if severity not in SEVERITIES:
            raise ValueError(f"{where}: meta.severity must be one of {SEVERITIES}")
        if not isinstance(row_level, bool):
            raise ValueError(f"{where}: meta.row_level must be true or false")
        kwargs = dict(exp.get("kwargs") or {})
        _check_parameters(kwargs, where)
        references = _references(exp["type"], kwargs, meta.get("references"), where)
        rule = Rule(name, exp["type"], kwargs, severity, row_level, references)
        if row_level:
            rule_sql(rule, {})  # raises for a rule that cannot pick out its rows
        rules.append(rule)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"suite {suite['name']!r}: rule names must be unique: {names}")
    return rules


def _check_parameters(kwargs: dict[str, Any], where: str) -> None:
    """Refuse a suite parameter that is not one of DELIVERY_PARAMETERS, or that stands where
    the SQL translation takes no parameter (anywhere but ``min_value`` and ``max_value``)."""
    for key, value in kwargs.items():
        if not (isinstance(value, dict) and "$PARAMETER" in value):
            continue
        if key not in ("min_value", "max_value"):
            raise ValueError(f"{where}: a $PARAMETER may only stand for min_value or max_value")
        if value["$PARAMETER"] not in DELIVERY_PARAMETERS:
            raise ValueError(
                f"{where}: {key} names the unknown parameter {value['$PARAMETER']!r} "
                f"(known: {', '.join(DELIVERY_PARAMETERS)})"
            )


def _references(
    type_: str, kwargs: dict[str, Any], references: Any, where: str
) -> tuple[str, str] | None:
    """``meta.references`` as (raw table, column), checked, or None."""
    if references is None:
        return None
    match = _REFERENCE.match(references) if isinstance(references, str) else None
    if match is None:
        raise ValueError(f"{where}: meta.references must read raw.<table>.<column>")
    if type_ != "unexpected_rows_expectation" or set(kwargs) != {"column"}:
        raise ValueError(
            f"{where}: a reference is an unexpected_rows_expectation whose only kwarg is column"
        )
    return match.group(1), match.group(2)


def delivery_parameters(ds: dt.date) -> dict[str, Any]:
    """The values of DELIVERY_PARAMETERS for the delivery ``ds`` (what GX is given)."""
    start = (ds - dt.date(1970, 1, 1)).days * 86_400
    end_time = dt.datetime.combine(ds + dt.timedelta(days=1), dt.time())
    return {"ds_start_epoch": start, "ds_end_epoch": start + 86_400, "ds_end_time": end_time}


def reference_query(rule: Rule, ds: dt.date) -> str:
    """GX's query for a reference rule: the batch rows whose value the referenced column of the
    same delivery lacks (``ds`` is a date, checked on entry: its ISO text is safe)."""
    table, ref = rule.references
    col, ref = qi(rule.kwargs["column"]), qi(ref)
    return (
        f"select * from {{batch}} where {col} is not null and {col} not in "
        f"(select {ref} from {ident(table)} where ds = DATE '{ds.isoformat()}' "
        f"and {ref} is not null)"
    )


def regex_query(column: str, regex: str) -> str:
    """GX's query for a regex rule: the batch rows whose ``column`` the pattern does not match
    (the pattern comes from a suite file of the repo, quoted as a SQL literal)."""
    pattern = "'" + regex.replace("'", "''") + "'"
    # GX formats the query's {batch}: a literal brace is doubled.
    pattern = pattern.replace("{", "{{").replace("}", "}}")
    col = qi(column)
    return (
        f"select * from {{batch}} where {col} is not null and not regexp_matches({col}, {pattern})"
    )


# ---- rules as SQL -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RuleSql:
    """DuckDB boolean expressions over one batch row (never null).

    ``unexpected`` marks the rows GX counts in ``unexpected_count``; ``quarantine`` the rows to
    set aside (the same, except for uniqueness: only the surplus after the first occurrence).
    """

    unexpected: str
    quarantine: str


_COMPARISON = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# Which duplicate is kept: the first record of the delivery.
_FIRST = "order by _source_file, _line"


def qi(name: str) -> str:
    """Quote an identifier (column names such as ``timestamp`` and ``key`` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def _bind(params: dict[str, Any], value: Any) -> str:
    """Add ``value`` to the named parameters and return its placeholder."""
    key = f"p{len(params)}"
    params[key] = value
    return f"${key}"


def _in_list(col: str, values: list, params: dict[str, Any]) -> str:
    """``col in (...)`` with each value bound: the same null semantics as GX's SQL ``IN``."""
    if not values:
        return "false"
    return f"{qi(col)} in ({', '.join(_bind(params, v) for v in values)})"


def _condition_columns(cond: Any) -> list[str]:
    if not isinstance(cond, dict):
        return []
    if cond.get("type") in ("and", "or"):
        return [c for sub in cond["conditions"] for c in _condition_columns(sub)]
    return [cond["column"]["name"]] if "column" in cond else []


def condition_sql(cond: Any, params: dict[str, Any]) -> str:
    """Translate a GX 1.x row condition (its JSON form) into SQL.

    String conditions (deprecated in GX 1.9) are not translated: their dialect is GX's own.
    """
    if cond is None:
        return "true"
    if not isinstance(cond, dict):
        raise ValueError(f"row_condition must be a GX Condition in JSON form, got {cond!r}")
    kind = cond.get("type")
    if kind in ("and", "or"):
        parts = [f"({condition_sql(c, params)})" for c in cond["conditions"]]
        return f" {kind} ".join(parts)
    col = cond["column"]["name"]
    if kind == "nullity":
        return f"{qi(col)} is {'' if cond['is_null'] else 'not '}null"
    if kind == "comparison":
        op, value = cond["operator"], cond["parameter"]
        if op == "IN":
            return _in_list(col, list(value), params)
        if op == "NOT_IN":
            return f"not ({_in_list(col, list(value), params)})"
        return f"{qi(col)} {_COMPARISON[op]} {_bind(params, value)}"
    raise ValueError(f"unsupported row_condition type {kind!r}")


def _value(params: dict[str, Any], value: Any) -> str:
    """A bound value's placeholder, or the SQL of a delivery parameter (over ``$ds``)."""
    if isinstance(value, dict) and "$PARAMETER" in value:
        return f"({DELIVERY_PARAMETERS[value['$PARAMETER']][0]})"
    return _bind(params, value)


def _between(col: str, kw: dict[str, Any], params: dict[str, Any]) -> str:
    c, parts = qi(col), []
    if kw.get("min_value") is not None:
        parts.append(
            f"{c} {'<=' if kw.get('strict_min') else '<'} {_value(params, kw['min_value'])}"
        )
    if kw.get("max_value") is not None:
        parts.append(
            f"{c} {'>=' if kw.get('strict_max') else '>'} {_value(params, kw['max_value'])}"
        )
    if not parts:
        raise ValueError("expect_column_values_to_be_between needs min_value or max_value")
    return " or ".join(parts)


def rule_sql(rule: Rule, params: dict[str, Any]) -> RuleSql:
    """The rule as SQL predicates; values are bound into ``params``, never formatted in.

    Mirrors GX's SQL semantics: map rules skip nulls (except not_be_null), a row condition
    restricts the domain first, and compound uniqueness ignores rows with a null key part
    (GX joins the group counts back on equality, which a null never satisfies). Delivery
    parameters and references read the delivery date from ``$ds``, which the caller binds.
    """
    kw = rule.kwargs
    cond = condition_sql(kw.get("row_condition"), params)
    col = kw.get("column")
    if rule.references is not None:
        table, ref = rule.references
        c, r = qi(col), qi(ref)
        pred = (
            f"coalesce({c} is not null and {c} not in (select {r} from {ident(table)} "
            f"where ds = $ds and {r} is not null), false)"
        )
        return RuleSql(pred, pred)
    simple = {
        "expect_column_values_to_not_be_null": lambda: f"{qi(col)} is null",
        "expect_column_values_to_be_in_set": lambda: (
            f"{qi(col)} is not null and not ({_in_list(col, list(kw['value_set']), params)})"
        ),
        "expect_column_values_to_not_be_in_set": lambda: _in_list(
            col, list(kw["value_set"]), params
        ),
        "expect_column_values_to_be_between": lambda: _between(col, kw, params),
        "expect_column_value_lengths_to_equal": lambda: (
            f"length({qi(col)}) <> {_bind(params, kw['value'])}"
        ),
        # GX's SQL regex is a search (PostgreSQL's ~): anchor the pattern to match it whole.
        "expect_column_values_to_match_regex": lambda: (
            f"{qi(col)} is not null and not regexp_matches({qi(col)}, {_bind(params, kw['regex'])})"
        ),
    }
    if rule.type in simple:
        pred = f"coalesce(({cond}) and ({simple[rule.type]()}), false)"
        return RuleSql(pred, pred)
    if rule.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        cols = [col] if rule.type == "expect_column_values_to_be_unique" else kw["column_list"]
        key = ", ".join(qi(c) for c in cols)
        present = " and ".join(f"{qi(c)} is not null" for c in cols)
        # Partitioning by the condition too keeps rows outside the domain out of the groups.
        part = f"partition by coalesce({cond}, false), {key}"
        base = f"coalesce({cond}, false) and {present}"
        return RuleSql(
            f"coalesce({base} and count(*) over ({part}) > 1, false)",
            f"coalesce({base} and row_number() over ({part} {_FIRST}) > 1, false)",
        )
    raise ValueError(f"rule {rule.name!r}: no SQL translation for {rule.type}")


def _batch_cte(raw_table: str) -> str:
    return f"batch as (select * from {ident(raw_table)} where ds = $ds)"


def sql_counts(
    con: duckdb.DuckDBPyConnection, raw_table: str, ds: dt.date, rules: list[Rule]
) -> dict[str, Any]:
    """Count, in one pass, each rule's unexpected and quarantine rows and the bad rows.

    Returns ``{"rows", "critical_rows", "quarantine_rows", "unexpected": {rule: n},
    "quarantine": {rule: n}}``; ``critical_rows`` counts rows breaking any critical row-level
    rule (the share that decides failure).
    """
    params: dict[str, Any] = {"ds": ds}
    flags, aggs = [], ["count(*)"]
    for i, rule in enumerate(rules):
        s = rule_sql(rule, params)
        flags += [f"{s.unexpected} as __u{i}", f"{s.quarantine} as __q{i}"]
        aggs += [f"count(*) filter (where __u{i})", f"count(*) filter (where __q{i})"]
    crit = [f"__q{i}" for i, r in enumerate(rules) if r.row_level and r.severity == "critical"]
    rowl = [f"__q{i}" for i, r in enumerate(rules) if r.row_level]
    aggs += [
        f"count(*) filter (where {' or '.join(crit) or 'false'})",
        f"count(*) filter (where {' or '.join(rowl) or 'false'})",
    ]
    # The constant keeps the select valid for a suite without countable rules.
    select_flags = ", ".join(["1 as __one", *flags])
    row = con.execute(
        f"with {_batch_cte(raw_table)}, flags as (select {select_flags} from batch) "
        f"select {', '.join(aggs)} from flags",
        params,
    ).fetchone()
    return {
        "rows": row[0],
        "unexpected": {r.name: row[1 + 2 * i] for i, r in enumerate(rules)},
        "quarantine": {r.name: row[2 + 2 * i] for i, r in enumerate(rules)},
        "critical_rows": row[-2],
        "quarantine_rows": row[-1],
    }


def _ensure_quarantine_table(con: duckdb.DuckDBPyConnection, raw: str, quarantine: str) -> None:
    """Create ``quarantine`` shaped like ``raw`` plus ``_rule`` and ``_severity``.

    A column the raw table gained since is added, so that old partitions stay readable.
    """
    if not table_exists(con, quarantine):
        con.execute(
            f"create table {quarantine} as select *, null::varchar as _rule, "
            f"null::varchar as _severity from {raw} limit 0"
        )
        return
    have = {r[0] for r in con.execute(f"describe {quarantine}").fetchall()}
    for name, dtype, *_ in con.execute(f"describe {raw}").fetchall():
        if name not in have:
            con.execute(f"alter table {quarantine} add column {qi(name)} {dtype}")


def _replace_quarantine(
    con: duckdb.DuckDBPyConnection, raw: str, quarantine: str, ds: dt.date, rules: list[Rule]
) -> None:
    """Replace the ``ds`` rows of ``quarantine`` (call inside a transaction).

    One row per offending raw row, labelled with the first row-level rule (in suite order)
    it broke.
    """
    con.execute(f"delete from {quarantine} where ds = ?", [ds])
    row_rules = [r for r in rules if r.row_level]
    if not row_rules:
        return
    params: dict[str, Any] = {"ds": ds}
    flags = [f"{rule_sql(r, params).quarantine} as __q{i}" for i, r in enumerate(row_rules)]
    label = " ".join(f"when __q{i} then {_bind(params, r.name)}" for i, r in enumerate(row_rules))
    severity = " ".join(
        f"when __q{i} then {_bind(params, r.severity)}" for i, r in enumerate(row_rules)
    )
    names = ", ".join(f"__q{i}" for i in range(len(row_rules)))
    con.execute(
        f"insert into {quarantine} by name "
        f"with {_batch_cte(raw)}, flags as (select batch.*, {', '.join(flags)} from batch) "
        f"select * exclude ({names}), case {label} end as _rule, "
        f"case {severity} end as _severity "
        f"from flags where {' or '.join(f'__q{i}' for i in range(len(row_rules)))}",
        params,
    )


# ---- GX -----------------------------------------------------------------------------------------
def _gx_context(docs_dir: Path):
    """An in-memory GX context whose Data Docs site is the folder ``docs_dir``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        # No network here, and no progress bars in task logs.
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={
            "nightshift": {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _batch_query(raw_table: str, ds: dt.date) -> str:
    # GX query assets take no bind parameters; ds is a date object (checked on entry), so its
    # ISO text is safe to write into the query.
    return f"select * from {ident(raw_table)} where ds = DATE '{ds.isoformat()}'"


def _run_gx(
    con: duckdb.DuckDBPyConnection,
    suites: dict[str, tuple[str, dict[str, Any]]],
    ds: dt.date,
    run_id: str,
    docs_dir: Path,
) -> dict[str, list]:
    """Run every suite on its table's ``ds`` batch in one checkpoint, then build Data Docs.

    ``suites`` maps a suite name to (raw table, suite JSON). Returns the GX results per suite.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    from mlcore import gx_duckdb

    context = _gx_context(docs_dir)
    datasource = gx_duckdb.add_datasource(context, "warehouse", con)
    try:
        definitions = []
        for name, (raw_table, suite_json) in suites.items():
            asset = datasource.add_query_asset(name, query=_batch_query(raw_table, ds))
            batch = asset.add_batch_definition_whole_table(f"ds={ds.isoformat()}")
            suite = context.suites.add(gx.ExpectationSuite(**_for_gx(suite_json, ds)))
            definitions.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=name, data=batch, suite=suite)
                )
            )
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=run_id,
                validation_definitions=definitions,
                # SUMMARY keeps GX's fetches small: counts plus at most 20 example values.
                result_format="SUMMARY",
            )
        )
        result = checkpoint.run(
            run_id=RunIdentifier(run_name=run_id), expectation_parameters=delivery_parameters(ds)
        )
        # One site build for the whole run (UpdateDataDocsAction rebuilds it once per suite).
        context.build_data_docs()
        return {r.suite_name: list(r.results) for r in result.run_results.values()}
    finally:
        # Close GX's cursors of con now, not whenever the context is garbage-collected.
        gx_duckdb.close_datasource(datasource)


def _for_gx(suite_json: dict[str, Any], ds: dt.date) -> dict[str, Any]:
    """A copy of the suite as GX runs it for the delivery ``ds``: each expectation says, on the
    Data Docs suite pages, what a failure does here (GX renders an expectation's ``notes``
    there, not its ``meta``), and each reference rule carries its query."""
    suite = json.loads(json.dumps(suite_json))
    for i, exp in enumerate(suite["expectations"]):
        meta = exp.get("meta") or {}
        action = "rows quarantined" if meta.get("row_level") else "reported only"
        exp.setdefault("notes", f"**{meta.get('rule')}**: {meta.get('severity')}, {action}")
        if exp["type"] == "expect_column_values_to_match_regex":
            # GX 1.24 has no regex for the duckdb dialect ("Regex is not supported"): the
            # same rule as the rows DuckDB's regexp_matches (a search, as GX's ~) refuses.
            kwargs = exp.get("kwargs") or {}
            exp["type"] = "unexpected_rows_expectation"
            exp["kwargs"] = {
                "unexpected_rows_query": regex_query(kwargs["column"], kwargs["regex"]),
                "description": f"{kwargs['column']} matches {kwargs['regex']}",
            }
        if meta.get("references") is not None:
            where = f"suite {suite['name']!r}, expectation {i}"
            kwargs = exp.get("kwargs") or {}
            references = _references(exp["type"], kwargs, meta["references"], where)
            rule = Rule(meta.get("rule"), exp["type"], kwargs, "", False, references)
            exp["kwargs"] = {
                "unexpected_rows_query": reference_query(rule, ds),
                "description": f"{kwargs['column']} is a {meta['references']} of the delivery",
            }
    return suite


def _exception_message(result) -> str | None:
    """The first error GX met computing a result, as one line, or None."""
    info = result.exception_info or {}
    infos = [info] if "raised_exception" in info else list(info.values())
    for i in infos:
        if isinstance(i, dict) and i.get("raised_exception"):
            return " ".join(str(i.get("exception_message")).split())[:500]
    return None


def _describe_failure(rule: Rule, result: dict[str, Any]) -> str:
    """Why a table-level rule failed, in a few words."""
    if result["exception"]:
        return f"{rule.name} (could not run: {result['exception']})"
    observed = result["observed_value"]
    if rule.type == "expect_table_columns_to_match_set":
        mismatch = (result.get("details") or {}).get("mismatched") or {}
        parts = [f"{k}: {', '.join(map(str, v))}" for k, v in mismatch.items() if v]
        return f"{rule.name} ({'; '.join(parts) or f'observed {observed}'})"
    if rule.type == "expect_table_row_count_to_be_between":
        return f"{rule.name} ({observed} rows)"
    return f"{rule.name} (observed {observed})"


def _result_fields(result) -> dict[str, Any]:
    r = result.result or {}
    unexpected = r.get("unexpected_count")
    if unexpected is None and result.expectation_config.type == "unexpected_rows_expectation":
        unexpected = r.get("observed_value")  # the rows its query returned
    return {
        "success": bool(result.success),
        "element_count": r.get("element_count"),
        "unexpected_count": unexpected,
        "unexpected_percent": r.get("unexpected_percent"),
        "observed_value": r.get("observed_value"),
        "partial_unexpected_list": r.get("partial_unexpected_list"),
        "details": r.get("details"),
        "exception": _exception_message(result),
    }


# ---- one table ----------------------------------------------------------------------------------
_UNIQUENESS = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def _entry(rows: int, failed_critical: list[str] | None = None) -> dict[str, Any]:
    """An empty report entry for one table."""
    return {
        "rows": rows,
        "quarantined": 0,
        "rejected_lines": 0,
        "failed_critical": list(failed_critical or []),
        "warnings": [],
        "rules": {},
    }


def _finding(rule: Rule, res: dict[str, Any], surplus: int | None, quarantined: int) -> str:
    """What a failed rule found, for the report: ``null user_id: 195 rows, 195 quarantined``."""
    found = res["unexpected_count"]
    text = f"{rule.name}: " + (
        f"{found} row{'' if found == 1 else 's'}"
        if found is not None
        else f"observed {res['observed_value']}"
    )
    if surplus is not None:
        text += f" ({surplus} surplus)"
    if rule.row_level:
        text += f", {quarantined} quarantined"
    return text


def _too_many_bad_rows(
    rules: list[Rule], counts: dict[str, Any], max_bad_row_share: float, rejected: int = 0
) -> str | None:
    """The failure reason when too much of the delivery is unusable, else None.

    Unusable: the rows that break critical row-level rules, and the ``rejected`` lines that
    ingest could not parse or cast (``ops.rejected_lines``): a delivery whose lines mostly
    failed to load must not pass because the few rows that did load are clean. ``rules``
    are the rules ``counts`` was computed for.
    """
    lines = counts["rows"] + rejected
    share = (counts["critical_rows"] + rejected) / lines if lines else 0.0
    if share <= max_bad_row_share:
        return None
    found = {r.name: counts["quarantine"][r.name] for r in rules if r.row_level}
    critical = [r.name for r in rules if r.row_level and r.severity == "critical"]
    listing = [
        f"{name}: {found[name]}"
        for name in sorted(critical, key=lambda n: -found[n])
        if found[name]
    ]
    allowed = f"> {max_bad_row_share:.0%} allowed"
    if not rejected:
        return f"{share:.0%} of rows break critical rules ({', '.join(listing)}) {allowed}"
    listing.insert(0, f"rejected at ingest: {rejected}")
    return (
        f"{share:.0%} of lines were rejected at ingest or break critical rules "
        f"({', '.join(listing)}) {allowed}"
    )


def _rejected_lines(con: duckdb.DuckDBPyConnection, source: str, table: str, ds: dt.date) -> int:
    """Lines of the ``ds`` delivery of ``source``.``table`` that ingest kept aside."""
    return con.execute(
        "select count(*) from ops.rejected_lines where source = ? and table_name = ? and ds = ?",
        [source, table, ds],
    ).fetchone()[0]


def _check_table(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    ds: dt.date,
    rules: list[Rule],
    gx_results: list,
    max_bad_row_share: float,
    rejected: int = 0,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Combine GX's results with the SQL counts and decide what fails.

    ``rejected``: the delivery's lines that ingest kept aside; they count against
    ``max_bad_row_share``. Returns the report entry and the rows for ``ops.validation_results``.
    """
    by_rule = {r.expectation_config.meta.get("rule"): _result_fields(r) for r in gx_results}
    columns = _columns(con, raw_table)
    countable = countable_rules(rules, columns)
    counts = sql_counts(con, raw_table, ds, countable)
    entry = _entry(counts["rows"])
    entry["quarantined"] = counts["quarantine_rows"]
    entry["rejected_lines"] = rejected
    records = []
    for rule in rules:
        res = by_rule.get(rule.name)
        if res is None:
            raise RuntimeError(f"GX returned no result for rule {rule.name!r} of {raw_table}")
        sql_unexpected = counts["unexpected"].get(rule.name)
        surplus = counts["quarantine"].get(rule.name) if rule.type in _UNIQUENESS else None
        quarantined = counts["quarantine"].get(rule.name, 0) if rule.row_level else 0
        if None not in (sql_unexpected, res["unexpected_count"]) and (
            sql_unexpected != res["unexpected_count"]
        ):
            # The quarantine would not match what GX reports: say so in the logs and in ops.
            log.warning(
                "%s: rule %r: SQL finds %s rows, GX %s",
                raw_table,
                rule.name,
                sql_unexpected,
                res["unexpected_count"],
            )
        entry["rules"][rule.name] = {
            "severity": rule.severity,
            "row_level": rule.row_level,
            "success": res["success"],
            "unexpected_count": res["unexpected_count"],
            "sql_unexpected_count": sql_unexpected,
            "surplus": surplus,
            "quarantined": quarantined,
        }
        missing = sorted(set(rule.columns) - columns)
        if res["success"]:
            pass
        elif missing:
            # The column-set rule fails the table already; say what went unchecked.
            entry["warnings"].append(f"{rule.name}: not checked, missing {', '.join(missing)}")
        elif rule.severity == "critical" and (not rule.row_level or res["exception"]):
            # A critical rule that could not even run vouches for nothing.
            entry["failed_critical"].append(_describe_failure(rule, res))
        else:
            finding = _finding(rule, res, surplus, quarantined)
            if "_extra_keys" in rule.columns:
                # Name the keys, not only count their rows: a new column (or one renamed in
                # some lines) is then named in the warning and the report.
                finding += f" ({_undeclared_keys(con, raw_table, ds)})"
            entry["warnings"].append(finding)
        records.append(_record(rule, res, entry["rules"][rule.name]))
    too_many = _too_many_bad_rows(countable, counts, max_bad_row_share, rejected)
    if too_many:
        undeclared = _undeclared_keys(con, raw_table, ds)
        if undeclared:
            # A renamed column reads as its declared name null in every row: name the new key.
            too_many += f"; keys outside the schema: {undeclared} (a renamed column?)"
        entry["failed_critical"].append(too_many)
    return entry, records


def _undeclared_keys(con: duckdb.DuckDBPyConnection, raw_table: str, ds: dt.date) -> str:
    """The most frequent keys outside the schema in the ``ds`` rows, with their rows."""
    found = con.execute(
        f"""
        select key, count(*) as n
        from (select unnest(_extra_keys) as key from {ident(raw_table)} where ds = ?)
        group by key order by n desc, key limit 5
        """,
        [ds],
    ).fetchall()
    return ", ".join(f"{key!r} in {n} row{'' if n == 1 else 's'}" for key, n in found)


def countable_rules(rules: list[Rule], columns: set[str]) -> list[Rule]:
    """The rules SQL can count on a table with ``columns``.

    A rule on a missing column is left to GX, which reports it as failed.
    """
    return [r for r in rules if _has_sql(r) and set(r.columns) <= columns]


def _has_sql(rule: Rule) -> bool:
    try:
        rule_sql(rule, {})
    except (ValueError, KeyError):
        return False
    return True


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {row[0] for row in con.execute(f"describe {ident(table)}").fetchall()}


def _record(rule: Rule, res: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """One row of ``ops.validation_results`` (without the run's columns)."""
    column = rule.kwargs.get("column") or ",".join(rule.kwargs.get("column_list") or []) or None
    details = {
        "rule": rule.name,
        "row_level": rule.row_level,
        "kwargs": rule.kwargs,
        "observed_value": res["observed_value"],
        "partial_unexpected_list": res["partial_unexpected_list"],
        "sql_unexpected_count": found["sql_unexpected_count"],
        "surplus": found["surplus"],
        "quarantined": found["quarantined"],
        "exception": res["exception"],
    }
    return {
        "expectation": rule.type,
        "column_name": column,
        "severity": rule.severity,
        "success": res["success"],
        "element_count": res["element_count"],
        "unexpected_count": res["unexpected_count"],
        "unexpected_percent": res["unexpected_percent"],
        "details": json.dumps(details, default=str, sort_keys=True),
    }


_RESULT_COLUMNS = (
    "run_id, ds, source, table_name, expectation, column_name, severity, success, "
    "element_count, unexpected_count, unexpected_percent, details, validated_at"
)


def _write_results(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    ds: dt.date,
    source: str,
    table: str,
    records: list[dict[str, Any]],
    validated_at: dt.datetime,
) -> None:
    """Replace the (ds, source, table) results (call inside a transaction)."""
    con.execute(
        "delete from ops.validation_results where ds = ? and source = ? and table_name = ?",
        [ds, source, table],
    )
    if records:
        con.executemany(
            f"insert into ops.validation_results ({_RESULT_COLUMNS}) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [run_id, ds, source, table, r["expectation"], r["column_name"], r["severity"]]
                + [r["success"], r["element_count"], r["unexpected_count"]]
                + [r["unexpected_percent"], r["details"], validated_at]
                for r in records
            ],
        )


def _unusable_record(reason: str) -> dict[str, Any]:
    return {
        "expectation": "raw_table_is_usable",
        "column_name": None,
        "severity": "critical",
        "success": False,
        "element_count": None,
        "unexpected_count": None,
        "unexpected_percent": None,
        "details": json.dumps({"rule": "raw table unusable", "reason": reason}),
    }


def _unusable_reason(con: duckdb.DuckDBPyConnection, raw_table: str) -> str | None:
    """Why GX cannot even be pointed at the table (missing, or without lineage), or None."""
    if not table_exists(con, raw_table):
        return "table missing (was the delivery ingested?)"
    missing = [c for c in REQUIRED_LINEAGE if c not in _columns(con, raw_table)]
    if missing:
        return f"lineage columns missing: {', '.join(missing)}"
    return None


# ---- the entry point ----------------------------------------------------------------------------
def validate_source(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    source: SourceSpec,
    ds: dt.date,
    *,
    max_bad_row_share: float = 0.25,
    expectations_dir: Path | None = None,
) -> ValidationReport:
    """Validate the ``ds`` delivery of every table of ``source``.

    Writes ``ops.validation_results`` and ``quarantine.<source>_<table>`` (the ``ds`` rows
    replaced, one transaction per table) and the Data Docs under
    ``reports/data_docs/<source>/ds=<ds>/``; raises :class:`ValidationFailed` afterwards when a
    table breaks a critical rule. ``con`` must be writable, with the raw tables committed.
    Suites come from ``expectations_dir`` (default: the repo's ``expectations/``).
    """
    if isinstance(ds, dt.datetime) or not isinstance(ds, dt.date):
        raise TypeError(f"ds must be a datetime.date, got {ds!r}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    run_id = f"{source.name}-{ds.isoformat()}-{now:%Y%m%dT%H%M%S%fZ}"
    report = ValidationReport(run_id=run_id, ds=ds, source=source.name)

    # Suites load (and are checked) before anything runs: a broken suite changes nothing.
    suites = {
        t.name: with_declared_columns(load_suite(source.name, t.name, expectations_dir), t)
        for t in source.tables
    }
    rules = {name: suite_rules(suite) for name, suite in suites.items()}
    own = {source.raw_table(t.name) for t in source.tables}
    for name, table_rules in rules.items():
        for rule in table_rules:
            if rule.references is not None and rule.references[0] not in own:
                raise ValueError(
                    f"suite {suites[name]['name']!r}, rule {rule.name!r}: references "
                    f"{rule.references[0]}, not a table of source {source.name}"
                )
    runnable: dict[str, str] = {}  # table -> raw table
    for name in suites:
        raw_table = source.raw_table(name)
        reason = _unusable_reason(con, raw_table)
        if reason is None:
            runnable[name] = raw_table
            continue
        report.tables[name] = _entry(rows=0, failed_critical=[reason])
        with _transaction(con):
            _write_results(con, run_id, ds, source.name, name, [_unusable_record(reason)], now)

    with tempfile.TemporaryDirectory(prefix="nightshift-docs-") as docs:
        gx_results = {}
        if runnable:
            batches = {suites[t]["name"]: (runnable[t], suites[t]) for t in runnable}
            gx_results = _run_gx(con, batches, ds, run_id, Path(docs))
        for name, raw_table in runnable.items():
            entry, records = _check_table(
                con,
                raw_table,
                ds,
                rules[name],
                gx_results[suites[name]["name"]],
                max_bad_row_share,
                _rejected_lines(con, source.name, name, ds),
            )
            quarantine = ident(f"quarantine.{source.name}_{name}")
            with _transaction(con):
                _ensure_quarantine_table(con, raw_table, quarantine)
                # Only rules whose columns exist can pick out rows.
                usable = countable_rules(rules[name], _columns(con, raw_table))
                _replace_quarantine(con, raw_table, quarantine, ds, usable)
                _write_results(con, run_id, ds, source.name, name, records, now)
            report.tables[name] = entry
            log.info(
                "validated %s for ds=%s: %s rows, %s quarantined, %s warnings, %s critical",
                raw_table,
                ds,
                entry["rows"],
                entry["quarantined"],
                len(entry["warnings"]),
                len(entry["failed_critical"]),
            )
        if runnable:
            prefix = reports_prefix("data_docs", source.name, f"ds={ds.isoformat()}")
            lake.replace_prefix(prefix, docs)
            report.data_docs_key = f"{prefix}/{DATA_DOCS_INDEX}"

    report.tables = {t.name: report.tables[t.name] for t in source.tables}  # source order
    if report.failures:
        raise ValidationFailed("; ".join(report.failures), report)
    return report


@contextlib.contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: readers see all of the block's writes or none of them."""
    con.execute("begin transaction")
    try:
        yield
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
