-- Caption runs pay like training runs (issue 15): the claim reserves the quoted price in the
-- ledger in the transaction that checks the Buzz caps, the submit's answer settles it, a submit
-- known to have created nothing releases it. The charge is keyed by the run (one per run and kind).
ALTER TABLE spend_ledger ADD COLUMN caption_run_id TEXT REFERENCES caption_runs (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX spend_ledger_caption_run_kind ON spend_ledger (caption_run_id, kind)
    WHERE caption_run_id IS NOT NULL;
-- While a run is 'submitting': until when its submit may still be on its way to Civitai; the
-- workflow is looked up (adopted, or the reservation released) only after that.
ALTER TABLE caption_runs ADD COLUMN lease_until TEXT;
-- SHA-256 of the run's callback secret, when it was submitted with a callback (PUBLIC_URL).
ALTER TABLE caption_runs ADD COLUMN hook_secret_hash TEXT;
