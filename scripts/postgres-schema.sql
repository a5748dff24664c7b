-- The Resonate server v0.7.0's PostgreSQL schema, created before the server starts, with two
-- columns widened to BIGINT. The server's own DDL (CREATE TABLE IF NOT EXISTS, so it keeps
-- these) declares them INTEGER, and then on PostgreSQL:
--   * callbacks.timeout: every remote await fails (SDK 0.4.10 registers its callbacks with a
--     timeout of 2^63-1 ms: "value out of range for type integer"), so workflows never resume;
--   * tasks.ttl: `expires_at = $1 + ttl` types the current time as integer, so every task
--     heartbeat fails and long steps lose their claim.
-- Safe to run again: it creates what is missing and widens what an earlier server created.

CREATE TABLE IF NOT EXISTS promises (
	id                           TEXT,
	sort_id                      SERIAL,
	state                        INTEGER DEFAULT 1,
	param_headers                JSONB,
	param_data                   BYTEA,
	value_headers                JSONB,
	value_data                   BYTEA,
	timeout                      BIGINT,
	idempotency_key_for_create   TEXT,
	idempotency_key_for_complete TEXT,
	tags                         JSONB,
	created_on                   BIGINT,
	completed_on                 BIGINT,
	PRIMARY KEY(id)
);

CREATE INDEX IF NOT EXISTS idx_promises_sort_id ON promises(sort_id);
-- The promise-timeout scan, every tick, reads pending promises only (as the sqlite patch).
CREATE INDEX IF NOT EXISTS idx_promises_state_timeout ON promises(state, timeout);
-- It also serves a search by a state that few promises have (the job listing's state filter),
-- since the server asks `state = ANY(...)` (resonate-patches/0004-filters-use-indexes.patch).
-- A search by id prefix (`job.*`: a job's steps and its progress): LIKE uses a btree index
-- only under the C collation, which the primary key has only if the database was created so.
CREATE INDEX IF NOT EXISTS idx_promises_id_pattern ON promises(id text_pattern_ops);
-- A search by tag (`tags @> ...`): the job listing of a principal, whose jobs carry the tag
-- async-api:owner, reads that principal's jobs only (the planner estimates from the column's
-- statistics how many promises a tag matches, and keeps scanning newest first for the tag
-- every job has).
CREATE INDEX IF NOT EXISTS idx_promises_tags ON promises USING gin (tags jsonb_path_ops);

CREATE TABLE IF NOT EXISTS callbacks (
	id              TEXT UNIQUE,
	promise_id      TEXT,
	root_promise_id TEXT,
	recv            BYTEA,
	mesg            BYTEA,
	timeout         BIGINT,
	created_on      BIGINT
);

CREATE TABLE IF NOT EXISTS schedules (
	id                    TEXT,
	sort_id               SERIAL,
	description           TEXT,
	cron                  TEXT,
	tags                  JSONB,
	promise_id            TEXT,
	promise_timeout       BIGINT,
	promise_param_headers JSONB,
	promise_param_data    BYTEA,
	promise_tags          JSONB,
	last_run_time         BIGINT,
	next_run_time         BIGINT,
	idempotency_key       TEXT,
	created_on            BIGINT,
	PRIMARY KEY(id)
);

CREATE INDEX IF NOT EXISTS idx_schedules_sort_id ON schedules(sort_id);
CREATE INDEX IF NOT EXISTS idx_schedules_next_run_time ON schedules(next_run_time);

CREATE TABLE IF NOT EXISTS locks (
	resource_id  TEXT,
	execution_id TEXT,
	process_id   TEXT,
	ttl          BIGINT,
	expires_at   BIGINT,
	PRIMARY KEY(resource_id)
);

CREATE INDEX IF NOT EXISTS idx_locks_id ON locks(resource_id, execution_id);
CREATE INDEX IF NOT EXISTS idx_locks_process_id ON locks(process_id);
CREATE INDEX IF NOT EXISTS idx_locks_expires_at ON locks(expires_at);

CREATE TABLE IF NOT EXISTS tasks (
	id              SERIAL PRIMARY KEY,
	process_id      TEXT,
	state           INTEGER DEFAULT 1,
	root_promise_id TEXT,
	recv            BYTEA,
	mesg            BYTEA,
	timeout         BIGINT,
	counter         INTEGER DEFAULT 1,
	attempt         INTEGER DEFAULT 0,
	ttl             BIGINT DEFAULT 0,
	expires_at      BIGINT DEFAULT 0,
	created_on      BIGINT,
	completed_on    BIGINT
);

CREATE INDEX IF NOT EXISTS idx_tasks_process_id ON tasks(process_id);
CREATE INDEX IF NOT EXISTS idx_tasks_expires_at ON tasks(expires_at);
-- The enqueueable-tasks query checks, for each task in init, that no task of its root is
-- enqueued or claimed: without these it scans every task for each one (the sqlite store gets
-- the same two from scripts/resonate-patches/0002-store-indexes.patch, the second as 0011
-- changed it). expires_at last, so that a task in init not yet due (server patch 0010) is
-- passed over in the index; a database made before loses the narrower index.
CREATE INDEX IF NOT EXISTS idx_tasks_root_promise_id_state ON tasks(root_promise_id, state);
CREATE INDEX IF NOT EXISTS idx_tasks_state_root_promise_id_expires_at
	ON tasks(state, root_promise_id, id, expires_at);
DROP INDEX IF EXISTS idx_tasks_state_root_promise_id;

CREATE TABLE IF NOT EXISTS migrations (
	id INTEGER,
	PRIMARY KEY(id)
);

INSERT INTO migrations (id) VALUES (1) ON CONFLICT(id) DO NOTHING;

ALTER TABLE callbacks ALTER COLUMN timeout TYPE BIGINT;
ALTER TABLE tasks ALTER COLUMN ttl TYPE BIGINT;
