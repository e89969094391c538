-- An admin's release forgives: failures and bans of the address up to this instant
-- count toward no rung and no escalation.
CREATE TABLE forgiven (
    ip TEXT PRIMARY KEY,
    at INTEGER NOT NULL
);

-- A success makes an address lenient only when it came after a clean hour and from
-- inside the extension networks; every success is still shown.
ALTER TABLE known_good ADD COLUMN lenient_at INTEGER;
UPDATE known_good SET lenient_at = last_success_at;
