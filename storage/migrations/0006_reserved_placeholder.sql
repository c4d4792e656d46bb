-- Placeholder: migration number 0006 is reserved for another branch (issue 15 was given 0007).
-- The lead drops this file when merging the branch that owns 0006; it changes nothing.
SELECT 1;
