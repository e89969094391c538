-- Who set a ban by hand; component health shown by `status` and the panel; the audit log.
ALTER TABLE bans ADD COLUMN created_by TEXT;

CREATE TABLE health (
    component TEXT PRIMARY KEY,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    client_ip TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at);
