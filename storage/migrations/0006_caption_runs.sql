-- Auto-captioning (issue 15). One row per captioning run: a workflow of one step per image,
-- priced and confirmed before it is submitted, charged once, resumed after a restart.
--   status       draft → submitting → running → succeeded | failed, or discarded (never run)
--   context      what the flow needs to go on afterwards (the /train options, the command)
--   images       the file names to caption, in step order (step i captions images[i])
--   result_digest the normalised zip with the captions applied, once succeeded
--   summary      kept / generated / replaced / failed counts and every final caption
CREATE TABLE caption_runs (
    id             TEXT PRIMARY KEY,
    guild_id       INTEGER NOT NULL,
    channel_id     INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    source_digest  TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('missing', 'all')),
    style          TEXT NOT NULL CHECK (style IN ('sentences', 'tags')),
    trigger_word   TEXT,
    images         TEXT NOT NULL CHECK (json_valid(images)),
    context        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(context)),
    payer          TEXT NOT NULL CHECK (payer IN ('user', 'server', 'operator')),
    simulated      INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN (0, 1)),
    external_id    TEXT NOT NULL UNIQUE,
    workflow_id    TEXT UNIQUE CHECK (workflow_id IS NULL OR workflow_id <> ''),
    status         TEXT NOT NULL DEFAULT 'draft' CHECK (status IN (
                       'draft', 'submitting', 'running', 'succeeded', 'failed', 'discarded')),
    price_quoted   REAL,
    price_charged  REAL,
    result_digest  TEXT,
    summary        TEXT CHECK (summary IS NULL OR json_valid(summary)),
    failure        TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX caption_runs_unfinished ON caption_runs (status) WHERE status IN ('submitting', 'running');
CREATE INDEX caption_runs_user ON caption_runs (user_id, created_at DESC);
-- /admin limits caption_buzz: captioning priced under this runs without its own confirmation.
CREATE TABLE guild_caption_settings (
    guild_id     INTEGER PRIMARY KEY,
    caption_buzz INTEGER NOT NULL DEFAULT 0 CHECK (caption_buzz >= 0)
);
