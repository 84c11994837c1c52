-- A tenant's cap on attempts at once (`max_concurrent_attempts`) held
-- across the nodes of a cluster (docs/architecture.md, "Quotas on a
-- cluster"): a node starts an attempt of a capped tenant only with a
-- permit, taken here and given back when the attempt ends. Permits of
-- nodes that are dead or gone do not count.

CREATE TABLE attempt_permits (
    tenant text COLLATE "C" NOT NULL,
    incarnation bigint NOT NULL,
    held integer NOT NULL,
    PRIMARY KEY (tenant, incarnation)
);

-- Grants node `me` up to `wanted` more permits of `tenant`, as many as
-- leave the live nodes' sum within `cap`; returns how many. One statement
-- for the caller, so that no lock is held across a round trip (a node cut
-- off mid-transaction would hold it). In a volatile function each
-- statement sees what committed before it, so the sum taken under the
-- tenant's lock counts every grant made before.
CREATE FUNCTION weft_take_permits(tenant_name text, me bigint, wanted integer, cap integer)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    taken integer;
    granted integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('weft-permits:' || tenant_name, 0));
    DELETE FROM attempt_permits p
    WHERE p.tenant = tenant_name
      AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.incarnation = p.incarnation AND n.state < 2);
    SELECT coalesce(sum(held), 0) INTO taken FROM attempt_permits WHERE tenant = tenant_name;
    granted := greatest(least(wanted, cap - taken), 0);
    IF granted > 0 THEN
        INSERT INTO attempt_permits AS p (tenant, incarnation, held) VALUES (tenant_name, me, granted)
        ON CONFLICT (tenant, incarnation) DO UPDATE SET held = p.held + EXCLUDED.held;
    END IF;
    RETURN granted;
END
$$;
