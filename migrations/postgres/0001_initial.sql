-- hive's shared run state, version 1: the run, its hosts' claims and every journal record.
-- Applied by hive itself (src/state/postgres/migrate.rs), once, in one transaction.

CREATE TABLE hive.runs (
    run         text PRIMARY KEY,
    -- The journal's header record: the plan, waves, options and hosts.
    header      jsonb NOT NULL,
    -- The highest wave the coordinator opened (-1: none yet). Workers claim hosts of waves up to it.
    open_wave   integer NOT NULL DEFAULT -1,
    -- running | paused | stopped | finished: workers claim only while running.
    state       text NOT NULL DEFAULT 'running',
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per host of a run: its site, its wave, who holds it and until when, and its verdict.
CREATE TABLE hive.hosts (
    run          text NOT NULL REFERENCES hive.runs ON DELETE CASCADE,
    host         text NOT NULL,
    site         text NOT NULL,
    wave         integer NOT NULL,
    owner        text,
    lease_until  timestamptz,
    claims       integer NOT NULL DEFAULT 0,
    verdict      text,
    PRIMARY KEY (run, host)
);
CREATE INDEX hosts_open ON hive.hosts (run, site, wave, host) WHERE verdict IS NULL;

-- The journal: the same records the NDJSON file holds, in the order they were kept.
CREATE TABLE hive.records (
    id      bigserial PRIMARY KEY,
    run     text NOT NULL REFERENCES hive.runs ON DELETE CASCADE,
    host    text,
    -- The writer's own key for the record, so a write retried after a lost reply is kept once.
    rid     text NOT NULL UNIQUE,
    record  jsonb NOT NULL
);
CREATE INDEX records_host ON hive.records (run, host, id);

-- Workers that took part in a run, for reports and for an operator looking for a dead one.
CREATE TABLE hive.workers (
    run           text NOT NULL REFERENCES hive.runs ON DELETE CASCADE,
    worker        text NOT NULL,
    site          text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, worker)
);
