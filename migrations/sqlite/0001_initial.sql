-- Timestamps are unix milliseconds (BIGINT); addresses are text as Rust's IpAddr prints them.

CREATE TABLE failures (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    ip TEXT,                      -- NULL: tampered record whose sender could not be located
    service TEXT NOT NULL,
    account TEXT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    raw TEXT NOT NULL,            -- at most 2 KiB
    tampered INTEGER NOT NULL DEFAULT 0,
    verdict TEXT NOT NULL
);
CREATE INDEX failures_ip_at ON failures (ip, at);
CREATE INDEX failures_at ON failures (at);

CREATE TABLE known_good (
    ip TEXT PRIMARY KEY,
    account TEXT,
    last_success_at BIGINT NOT NULL
);

CREATE TABLE bans (
    id INTEGER PRIMARY KEY,
    ip TEXT NOT NULL,
    reason TEXT NOT NULL,
    rung INTEGER NOT NULL,        -- 0: set by an admin
    created_at BIGINT NOT NULL,
    until_at BIGINT,              -- NULL: until released
    released_at BIGINT,
    released_by TEXT
);
CREATE INDEX bans_ip ON bans (ip, created_at);
CREATE INDEX bans_active ON bans (released_at, until_at);

CREATE TABLE log_sources (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    inode BIGINT NOT NULL,
    first_line_hash TEXT NOT NULL,
    read_offset BIGINT NOT NULL,
    lines_read BIGINT NOT NULL DEFAULT 0,
    unreadable_lines BIGINT NOT NULL DEFAULT 0,
    tampered_records BIGINT NOT NULL DEFAULT 0,
    last_line_at BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
