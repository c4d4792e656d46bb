-- Exactly-once posts beyond Discord's nonce window. The tracker records an intent *before* it
-- posts an epoch, an end notice or a DM; the post's own record (posted_epochs, handled_events)
-- is written after it succeeded. An intent without that record after a restart means "it may
-- be on Discord already": the channel is searched for the post's marker before posting again.
CREATE TABLE post_intents (
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    post_key    TEXT NOT NULL,
    intended_at TEXT NOT NULL,
    PRIMARY KEY (job_id, post_key)
) WITHOUT ROWID;
-- A deleted thread used to be remembered as the handled event 'thread:gone'; jobs.thread_gone
-- (migration 0003) holds it now, for a thread that is archived, locked or forbidden as well.
UPDATE jobs SET thread_gone = 1
WHERE id IN (SELECT job_id FROM handled_events WHERE event_key = 'thread:gone');
DELETE FROM handled_events WHERE event_key = 'thread:gone';
