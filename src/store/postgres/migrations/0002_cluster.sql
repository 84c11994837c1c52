-- The cluster: nodes that share this database, and the lease of every
-- unfinished run (docs/architecture.md, "The cluster").

-- 0001's placeholder, never written: replaced by the registry below.
DROP TABLE nodes;

-- Every process that joins gets a new incarnation; leases name it.
CREATE SEQUENCE node_incarnations AS bigint START 1;

CREATE TABLE nodes (
    incarnation bigint PRIMARY KEY,
    node_id text COLLATE "C" NOT NULL,
    address text NOT NULL,
    version text NOT NULL,
    capacity integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- the database's clock, so that nodes' clocks need not agree
    heartbeat_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- 0 alive, 1 draining, 2 dead, 3 left (store::cluster::NodeState)
    state smallint NOT NULL DEFAULT 0,
    running integer NOT NULL DEFAULT 0,
    claims bigint NOT NULL DEFAULT 0,
    claims_per_s real NOT NULL DEFAULT 0
);

CREATE INDEX nodes_by_id ON nodes (node_id) WHERE state < 2;

-- A run is leased to the node that runs it, for as long as that node
-- heartbeats; every claim increases the epoch, which the node's commits
-- must carry (fencing).
ALTER TABLE runs ADD COLUMN lease_node bigint, ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
CREATE INDEX runs_leases ON runs (lease_node) WHERE status = 0;

-- Nodes lease runs, not units: the unit lease columns of 0001 go.
ALTER TABLE units DROP COLUMN lease_node, DROP COLUMN lease_epoch, DROP COLUMN lease_until;

-- Run ids are handed out in blocks of 1000, one block per nextval, so
-- that nodes need not agree on each id; the next block starts past every
-- id stored.
ALTER SEQUENCE run_ids INCREMENT BY 1000;
-- An empty store's first block starts at 1.
SELECT CASE WHEN (SELECT max(run_id) FROM runs) IS NULL AND NOT (SELECT is_called FROM run_ids)
    THEN setval('run_ids', 1, false)
    ELSE setval('run_ids', greatest((SELECT max(run_id) FROM runs), (SELECT last_value FROM run_ids), 1))
END;
