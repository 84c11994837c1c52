-- Named records kept beside runs: schedules, inbound hooks, and the
-- notification deliveries with their outbox (docs/architecture.md,
-- "Schedules, inbound hooks and notifications"). Every write moves
-- `revision` on, so nodes racing on one record compare and set.

CREATE TABLE objects (
    kind text COLLATE "C" NOT NULL,
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    revision bigint NOT NULL,
    value json NOT NULL,
    PRIMARY KEY (kind, tenant, name)
);
