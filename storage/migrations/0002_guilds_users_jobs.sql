-- Conventions: Discord ids are INTEGER (snowflakes fit in a signed 64-bit integer); times are
-- ISO-8601 UTC text with milliseconds, 'YYYY-MM-DDTHH:MM:SS.mmmZ', so they sort as text.
-- Setting columns that are NULL mean "use the global default" (storage.models.GuildDefaults).

CREATE TABLE guild_settings (
    guild_id                     INTEGER PRIMARY KEY,
    required_role_id             INTEGER,
    max_concurrent_jobs_per_user INTEGER CHECK (max_concurrent_jobs_per_user >= 1),
    user_daily_buzz_cap          INTEGER CHECK (user_daily_buzz_cap >= 0),
    guild_monthly_buzz_cap       INTEGER CHECK (guild_monthly_buzz_cap >= 0),
    max_steps                    INTEGER CHECK (max_steps >= 1),
    max_epochs                   INTEGER CHECK (max_epochs >= 1),
    payer                        TEXT CHECK (payer IN ('user', 'server', 'operator')),
    -- Fernet ciphertext (bot.secretbox); nothing else derived from the token is stored.
    server_token_ciphertext      TEXT,
    thread_mode                  TEXT CHECK (thread_mode IN ('public', 'private')),
    log_channel_id               INTEGER,
    cooldown_seconds             REAL CHECK (cooldown_seconds >= 0),
    updated_at                   TEXT NOT NULL
);

-- /train is allowed everywhere in a guild that has no rows here.
CREATE TABLE guild_channels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    added_at   TEXT NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;

CREATE TABLE guild_blocks (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    -- NULL once the admin who blocked has had their data deleted; the block itself stays.
    blocked_by INTEGER,
    reason     TEXT,
    blocked_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
) WITHOUT ROWID;
CREATE INDEX guild_blocks_user ON guild_blocks (user_id);
CREATE INDEX guild_blocks_blocked_by ON guild_blocks (blocked_by);

CREATE TABLE user_settings (
    user_id          INTEGER PRIMARY KEY,
    dm_notify        INTEGER CHECK (dm_notify IN (0, 1)),
    token_ciphertext TEXT,
    updated_at       TEXT NOT NULL
);

CREATE TABLE jobs (
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
    workflow_id      TEXT UNIQUE,
    status           TEXT NOT NULL DEFAULT 'draft' CHECK (status IN (
                         'draft', 'submitting', 'submitted', 'unassigned', 'preparing', 'scheduled',
                         'processing', 'succeeded', 'failed', 'expired', 'canceled', 'discarded')),
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
CREATE INDEX jobs_user_created ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at DESC);
CREATE INDEX jobs_guild_user_status ON jobs (guild_id, user_id, status);
-- The reconcile pass reads every job that is not finished yet.
CREATE INDEX jobs_unfinished ON jobs (status) WHERE finished_at IS NULL;

-- Each tracker event (status change, epoch N available, final message…) is acted on once.
CREATE TABLE handled_events (
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event_key  TEXT NOT NULL,
    handled_at TEXT NOT NULL,
    PRIMARY KEY (job_id, event_key)
) WITHOUT ROWID;

CREATE TABLE posted_epochs (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch_number INTEGER NOT NULL CHECK (epoch_number >= 1),
    message_id   INTEGER,
    posted_at    TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch_number)
) WITHOUT ROWID;

CREATE TABLE callback_deliveries (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    received_at TEXT NOT NULL,
    body_digest TEXT NOT NULL,
    outcome     TEXT NOT NULL
);
CREATE INDEX callback_deliveries_job ON callback_deliveries (job_id);
CREATE INDEX callback_deliveries_received ON callback_deliveries (received_at);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER,
    actor_id   INTEGER,
    -- The member the action is about (blocked, whose job was cancelled…), so forgetting a
    -- member also removes what others did to them.
    subject_id INTEGER,
    action     TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    at         TEXT NOT NULL
);
CREATE INDEX audit_log_guild_at ON audit_log (guild_id, at DESC);
CREATE INDEX audit_log_actor ON audit_log (actor_id);
CREATE INDEX audit_log_subject ON audit_log (subject_id);

-- Net spend of a job = its charge + its settle adjustment + its (negative) credit.
-- `at` is the accounting time: settle and credit rows carry their charge's time so a job's
-- cost stays in the period it was submitted in; `recorded_at` is when the row was written.
CREATE TABLE spend_ledger (
    id          INTEGER PRIMARY KEY,
    guild_id    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    job_id      TEXT REFERENCES jobs (id) ON DELETE SET NULL,
    payer       TEXT NOT NULL CHECK (payer IN ('user', 'server', 'operator')),
    amount      REAL NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('charge', 'settle', 'credit')),
    at          TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX spend_ledger_guild_user_at ON spend_ledger (guild_id, user_id, at);
CREATE INDEX spend_ledger_guild_at ON spend_ledger (guild_id, at);
CREATE INDEX spend_ledger_user ON spend_ledger (user_id);
-- One charge, one settlement and one credit row per job at most: a retried submit or a
-- repeated settlement can never count twice.
CREATE UNIQUE INDEX spend_ledger_job_kind ON spend_ledger (job_id, kind) WHERE job_id IS NOT NULL;
