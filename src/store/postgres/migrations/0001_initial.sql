-- weft's first PostgreSQL schema: everything the redb store holds, plus
-- the columns the cluster's claims and leases will use.
--
-- Text is compared byte by byte (COLLATE "C"), as redb orders keys, so
-- both backends list in the same order whatever the database's locale.
--
-- Every table a tenant owns has `tenant` first in its primary key, and no
-- statement weft issues spans tenants, so these tables can be distributed
-- by tenant (docs/architecture.md, "Growing past one primary"). Records
-- are the same JSON the redb store keeps (`record json`: kept as written,
-- which jsonb would not, and never queried into), with the
-- columns that are filtered or sorted on beside them.

CREATE TABLE tenants (
    tenant text COLLATE "C" PRIMARY KEY,
    record json NOT NULL
);

-- Looked up by key id before the tenant is known: a reference table when
-- distributed.
CREATE TABLE api_keys (
    key_id text COLLATE "C" PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL REFERENCES tenants (tenant),
    record json NOT NULL
);

-- A tenant may only run bytes it uploaded, so bytes are kept per tenant.
CREATE TABLE module_bytes (
    tenant text COLLATE "C" NOT NULL,
    digest bytea NOT NULL,
    bytes bytea NOT NULL,
    PRIMARY KEY (tenant, digest)
);

CREATE TABLE module_versions (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    digest bytea NOT NULL,
    created_at bigint NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

-- A module's newest version: what a step that names no version runs.
CREATE TABLE module_names (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE workflows (
    tenant text COLLATE "C" NOT NULL,
    digest bytea NOT NULL,
    source text COLLATE "C" NOT NULL,
    PRIMARY KEY (tenant, digest)
);

CREATE TABLE workflow_versions (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    digest bytea NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant, name, version)
);

CREATE TABLE workflow_names (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- Run ids are unique across tenants and nodes; nodes take them in blocks.
CREATE SEQUENCE run_ids AS bigint START 1 CACHE 1;

CREATE TABLE runs (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    workflow text COLLATE "C" NOT NULL,
    -- 0 running, 1 succeeded, 2 failed, 3 cancelled (model::RunStatus)
    status smallint NOT NULL,
    priority integer NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (tenant, run_id)
);

-- A run is found by id alone only where the id is all there is (the
-- engine's own lookups): unique across tenants by the sequence.
CREATE UNIQUE INDEX runs_by_id ON runs (run_id);
-- What recovery resumes.
CREATE INDEX runs_active ON runs (tenant, run_id) WHERE status = 0;
-- A tenant's runs newest first, by workflow and status: the run listing.
CREATE INDEX runs_listing ON runs (tenant, workflow, status, run_id DESC);
-- Finished runs by age: what retention deletes.
CREATE INDEX runs_finished ON runs (tenant, updated_at) WHERE status <> 0;

-- The unit row is the ready queue and the timer list: `status` with
-- `ready_at` (now for a ready unit, the retry's due time for a retrying
-- one). The lease columns are the cluster's: a node that claims a unit
-- sets them, and a commit of its result checks `lease_epoch`.
CREATE TABLE units (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    step integer NOT NULL,
    -- -1 for a plain step or a fan-out's parent
    item integer NOT NULL,
    -- model::UnitStatus: 0 pending, 1 ready, 2 running, 3 retrying,
    -- 4 succeeded, 5 failed, 6 skipped, 7 cancelled
    status smallint NOT NULL,
    priority integer NOT NULL,
    ready_at bigint,
    lease_node uuid,
    lease_epoch bigint NOT NULL DEFAULT 0,
    lease_until bigint,
    record json NOT NULL,
    PRIMARY KEY (tenant, run_id, step, item)
);

CREATE INDEX units_ready ON units (ready_at, priority DESC) WHERE status IN (1, 3);

CREATE TABLE attempts (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    step integer NOT NULL,
    item integer NOT NULL,
    attempt integer NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (tenant, run_id, step, item, attempt)
);

-- Append-only: weft inserts events and never updates one.
CREATE TABLE events (
    tenant text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    seq integer NOT NULL,
    event json NOT NULL,
    PRIMARY KEY (tenant, run_id, seq)
);

CREATE TABLE kv (
    tenant text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE idempotency_keys (
    tenant text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    run_id bigint NOT NULL,
    PRIMARY KEY (tenant, key)
);

-- Retention deletes a run's keys with it.
CREATE INDEX idempotency_keys_by_run ON idempotency_keys (tenant, run_id);

-- The cluster's node registry.
CREATE TABLE nodes (
    node_id uuid PRIMARY KEY,
    incarnation bigint NOT NULL,
    address text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    capacity integer NOT NULL,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL,
    -- alive, draining or dead
    state text COLLATE "C" NOT NULL
);
