-- Permit/deny lists beyond "trusted": extension networks, trunk providers (per trunk),
-- always deny; optional expiry and host names resolved by DNS. Which Asterisk objects
-- are extensions and which are trunks.
ALTER TABLE networks ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
ALTER TABLE networks ADD COLUMN expires_at BIGINT;
ALTER TABLE networks ADD COLUMN host TEXT;
ALTER TABLE networks ADD COLUMN resolved_at BIGINT;

CREATE TABLE acl_targets (
    name TEXT NOT NULL,
    tech TEXT NOT NULL,            -- 'pjsip' or 'sip'
    role TEXT NOT NULL,            -- 'extension', 'trunk' or 'ignore'
    trunk TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (name, tech)
);
