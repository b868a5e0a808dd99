-- hive's shared run state, version 2: a wave's soak, judged over every site.
-- Applied by hive itself (src/state/postgres/migrate.rs), once, in one transaction.

-- One row per soaking (or soaked) wave. The coordinator inserts it when the wave passed its gate;
-- its deadline is on the database's clock, so neither workers' clocks nor a coordinator restart
-- move it.
CREATE TABLE hive.soaks (
    run    text NOT NULL REFERENCES hive.runs ON DELETE CASCADE,
    wave   integer NOT NULL,
    until  timestamptz NOT NULL,
    -- Set when the coordinator judged the soak: workers stop polling, later results are refused.
    ended  timestamptz,
    PRIMARY KEY (run, wave)
);

-- What the soak found on a patched host of its wave: NULL (not yet known), healthy (its last
-- check passed), unchecked (its site's workers have no health check), unhealthy (the verdict was
-- changed to unhealthy), with the failed check's evidence.
ALTER TABLE hive.hosts ADD COLUMN soak text CHECK (soak IN ('healthy', 'unchecked', 'unhealthy'));
ALTER TABLE hive.hosts ADD COLUMN soak_evidence text;
