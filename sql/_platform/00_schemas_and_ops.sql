-- The warehouse's schemas and the platform's own bookkeeping tables.
-- Idempotent: run on every connection that may write.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists features;
create schema if not exists marts;
create schema if not exists ops;
create schema if not exists quarantine;
-- reference data derived from maintained libraries (ref.calendar: mlcore/calendars.py)
create schema if not exists ref;

-- One row per line of a delivery that could not be loaded (grain: source × file × line).
create table if not exists ops.rejected_lines (
    source varchar not null,
    table_name varchar not null,
    ds date not null,
    source_file varchar not null,
    line bigint not null,
    reason varchar not null,
    raw_line varchar,
    rejected_at timestamp not null
);

-- One row per expectation per validation run (grain: run_id × table × expectation).
create table if not exists ops.validation_results (
    run_id varchar not null,
    ds date not null,
    source varchar not null,
    table_name varchar not null,
    expectation varchar not null,
    column_name varchar,
    severity varchar not null,          -- critical | warning
    success boolean not null,
    element_count bigint,
    unexpected_count bigint,
    unexpected_percent double,
    details varchar,                    -- JSON
    validated_at timestamp not null
);

-- One row per trained model (grain: pipeline × model_name × version).
create table if not exists ops.model_runs (
    pipeline varchar not null,
    model_name varchar not null,
    version varchar not null,
    ds date not null,
    params varchar,                     -- JSON
    data_fingerprint varchar,
    metrics varchar,                    -- JSON: the model's holdout metrics
    baseline_metrics varchar,           -- JSON: {baseline_name: metrics} measured in the same run
    artifact_uri varchar,
    status varchar not null,            -- champion | rejected | retired | degraded
    reason varchar,
    created_at timestamp not null
);

-- One row per published partition (grain: table × ds × publish).
create table if not exists ops.publish_log (
    table_name varchar not null,
    ds date not null,
    row_count bigint not null,
    model_version varchar,
    lake_uri varchar,
    published_at timestamp not null
);

-- Which model serves each published model slot of a pipeline for a ds, and why
-- (grain: pipeline × ds × slot). Written by the gate, read by the publisher. status: champion
-- (the slot's champion serves) or degraded (no candidate passed and no champion could serve:
-- the best model of the run that beats the naive baseline serves instead).
create table if not exists ops.serving (
    pipeline varchar not null,
    ds date not null,
    slot varchar not null,
    model_name varchar not null,
    version varchar not null,
    status varchar not null,
    reason varchar,
    decided_at timestamp not null
);

-- The day each source's staging tables were last built for (grain: source). Pipelines check
-- it before building features, so that features for D never read a source staged for another
-- day.
create table if not exists ops.staged_sources (
    source varchar not null,
    ds date not null,
    tables varchar,                     -- JSON: {staging table: rows}
    staged_at timestamp not null
);
