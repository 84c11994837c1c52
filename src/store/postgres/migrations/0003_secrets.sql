-- Tenants' secrets, sealed by the master key before they reach the
-- database (docs/architecture.md, "Secrets"): nothing here opens them.

CREATE TABLE secrets (
    tenant text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    -- the id of the master key that sealed the value
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- One row: a known constant sealed by the store's master key, so that a
-- node started with another key refuses to start instead of failing
-- every secret it reads.
CREATE TABLE keycheck (
    id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key_id text NOT NULL,
    nonce bytea NOT NULL,
    ciphertext bytea NOT NULL
);
