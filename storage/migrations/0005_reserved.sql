-- Placeholder: number 0005 belongs to another branch. Drop this file when that branch's 0005 is merged.
SELECT 1;
