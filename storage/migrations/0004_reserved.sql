-- Placeholder: number 0004 belongs to another branch. Drop this file when that branch's 0004 is merged.
SELECT 1;
