-- Image generation with trained epochs (Try it, Try again, Compare, /generate), epoch votes and
-- the owner's pick. New tables only, plus one nullable column on the ledger.
--   generations   one priced, confirmed imageGen workflow. Like a job it exists before its
--                 submit (draft → submitting → submitted → posted) and carries its own
--                 externalId, so Confirm pressed twice or a restart mid-submit never submits or
--                 charges twice. job_id: the run it was tried from (its thread gets the images).
CREATE TABLE generations (
    id             TEXT PRIMARY KEY,
    guild_id       INTEGER NOT NULL,
    channel_id     INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    job_id         TEXT REFERENCES jobs (id) ON DELETE SET NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('try', 'compare', 'generate')),
    params         TEXT NOT NULL CHECK (json_valid(params)),
    payer          TEXT NOT NULL CHECK (payer IN ('user', 'server', 'operator')),
    token_source   TEXT NOT NULL CHECK (token_source IN ('user', 'server', 'operator', 'none')),
    external_id    TEXT NOT NULL UNIQUE,
    workflow_id    TEXT UNIQUE CHECK (workflow_id IS NULL OR workflow_id <> ''),
    status         TEXT NOT NULL DEFAULT 'draft' CHECK (status IN (
                       'draft', 'submitting', 'submitted', 'posted', 'failed', 'discarded')),
    price_quoted   REAL,
    price_estimate REAL,
    price_charged  REAL,
    simulated      INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN (0, 1)),
    message_id     INTEGER,
    end_reason     TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    submitted_at   TEXT,
    finished_at    TEXT
);
CREATE INDEX generations_unfinished ON generations (status) WHERE finished_at IS NULL;
CREATE INDEX generations_user ON generations (user_id);

-- A generation's spend: the same ledger as training (caps and /admin usage count it), keyed by
-- the generation instead of a job; one row per generation and kind.
ALTER TABLE spend_ledger ADD COLUMN generation_id TEXT REFERENCES generations (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX spend_ledger_generation_kind ON spend_ledger (generation_id, kind)
    WHERE generation_id IS NOT NULL;

-- Who may press Try it on a run in a server: its owner only (default) or every member.
CREATE TABLE generation_settings (
    guild_id   INTEGER PRIMARY KEY,
    try_it     TEXT NOT NULL CHECK (try_it IN ('owner', 'members')),
    updated_at TEXT NOT NULL
);

-- Runs whose owner let every member try them, whatever generation_settings.try_it says.
CREATE TABLE try_it_runs (
    job_id     TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    opened_at  TEXT NOT NULL
);

-- One vote per member and run, changeable; the run owner's pick.
CREATE TABLE epoch_votes (
    job_id       TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL,
    epoch_number INTEGER NOT NULL CHECK (epoch_number >= 1),
    voted_at     TEXT NOT NULL,
    PRIMARY KEY (job_id, user_id)
) WITHOUT ROWID;
CREATE INDEX epoch_votes_user ON epoch_votes (user_id);

CREATE TABLE epoch_picks (
    job_id       TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    epoch_number INTEGER NOT NULL CHECK (epoch_number >= 1),
    picked_at    TEXT NOT NULL
);

-- Where a run's final grid is (learnt from the first use of its menus): tallies are edited there.
CREATE TABLE vote_messages (
    job_id     TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL,
    message_id INTEGER NOT NULL
);
