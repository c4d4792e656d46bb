-- Jobs gain what exactly-once submits and honest endings need. SQLite cannot change a CHECK
-- in place, so the table is rebuilt (storage.migrations turns foreign keys off around a
-- migration and checks them before it commits, as SQLite's documented procedure asks).
--   revision      bumped by every change of a draft; Confirm carries the revision it showed,
--                 and a Confirm for an older revision submits nothing.
--   lease_until   while a submit is in flight its task renews this; recovery takes over a
--                 'submitting' job only once the lease has run out.
--   status 'lost' the run can no longer be followed (deleted or aged out at Civitai, its token
--                 removed, a simulated run after switching to real mode): terminal, frees the slot.
--   end_reason    what the member is told about a 'lost' (or otherwise unusual) end.
--   thread_gone   posts for this job go to DMs: its thread was archived, deleted or forbidden.
--   workflow_id   never stored empty.
CREATE TABLE jobs_new (
    id               TEXT PRIMARY KEY,
    guild_id         INTEGER NOT NULL,
    channel_id       INTEGER NOT NULL,
    user_id          INTEGER NOT NULL,
    name             TEXT NOT NULL,
    variant          TEXT NOT NULL CHECK (variant IN ('dev', 'schnell')),
    params           TEXT NOT NULL CHECK (json_valid(params)),
    dataset_digest   TEXT NOT NULL,
    image_count      INTEGER NOT NULL CHECK (image_count >= 0),
    payer            TEXT NOT NULL CHECK (payer IN ('user', 'server', 'operator')),
    token_source     TEXT NOT NULL CHECK (token_source IN ('user', 'server', 'operator', 'none')),
    -- Sent with every submit of this job so a repeated submit never creates a second workflow.
    external_id      TEXT NOT NULL UNIQUE,
    hook_secret_hash TEXT,
    workflow_id      TEXT UNIQUE CHECK (workflow_id IS NULL OR workflow_id <> ''),
    status           TEXT NOT NULL DEFAULT 'draft' CHECK (status IN (
                         'draft', 'submitting', 'submitted', 'unassigned', 'preparing', 'scheduled',
                         'processing', 'succeeded', 'failed', 'expired', 'canceled', 'discarded',
                         'lost')),
    revision         INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1),
    lease_until      TEXT,
    end_reason       TEXT,
    thread_gone      INTEGER NOT NULL DEFAULT 0 CHECK (thread_gone IN (0, 1)),
    price_estimate   REAL,
    price_quoted     REAL,
    price_charged    REAL,
    final_cost       REAL,
    last_state       TEXT CHECK (last_state IS NULL OR json_valid(last_state)),
    last_state_at    TEXT,
    progress         REAL CHECK (progress IS NULL OR (progress >= 0 AND progress <= 1)),
    card_channel_id  INTEGER,
    card_message_id  INTEGER,
    thread_id        INTEGER,
    simulated        INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN (0, 1)),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    submitted_at     TEXT,
    finished_at      TEXT
);
INSERT INTO jobs_new (id, guild_id, channel_id, user_id, name, variant, params, dataset_digest, image_count,
                      payer, token_source, external_id, hook_secret_hash, workflow_id, status, price_estimate,
                      price_quoted, price_charged, final_cost, last_state, last_state_at, progress,
                      card_channel_id, card_message_id, thread_id, simulated, created_at, updated_at,
                      submitted_at, finished_at)
SELECT id, guild_id, channel_id, user_id, name, variant, params, dataset_digest, image_count,
       payer, token_source, external_id, hook_secret_hash, NULLIF(workflow_id, ''), status, price_estimate,
       price_quoted, price_charged, final_cost, last_state, last_state_at, progress,
       card_channel_id, card_message_id, thread_id, simulated, created_at, updated_at,
       submitted_at, finished_at
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_user_created ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at DESC);
CREATE INDEX jobs_guild_user_status ON jobs (guild_id, user_id, status);
-- The reconcile pass reads every job that is not finished yet.
CREATE INDEX jobs_unfinished ON jobs (status) WHERE finished_at IS NULL;
