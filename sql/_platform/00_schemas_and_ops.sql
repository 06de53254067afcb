-- The warehouse's schemas and the platform's own bookkeeping tables.
-- Idempotent: run on every connection that may write.
create schema if not exists raw;
create schema if not exists staging;
create schema if not exists features;
create schema if not exists marts;
create schema if not exists ops;
create schema if not exists quarantine;

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
    status varchar not null,            -- candidate | champion | rejected | retired
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
