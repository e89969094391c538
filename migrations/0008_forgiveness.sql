-- An admin's release forgives: failures and bans of the address up to this instant
-- count toward no rung and no escalation.
CREATE TABLE forgiven (
    ip TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);
