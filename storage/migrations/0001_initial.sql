-- Key/value facts about this installation (command tree hash, learned transport fallbacks…).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
