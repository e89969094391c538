-- Several PBXes may share one store: each row says which node (PBX) saw or decided
-- it. '' is a row written before nodes had names; a node adopts those of its log
-- cursors and health when it starts.
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_contact BIGINT NOT NULL,
    version TEXT NOT NULL
);
ALTER TABLE failures ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE bans ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN node TEXT NOT NULL DEFAULT '';
-- The nodes that saw an address fail, comma-separated (like `services`).
ALTER TABLE offenders ADD COLUMN nodes TEXT NOT NULL DEFAULT '';

-- Log cursors and health are each node's own: two PBXes both read
-- /var/log/asterisk/messages.
CREATE TABLE node_health (
    node TEXT NOT NULL,
    component TEXT NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, component)
);
INSERT INTO node_health SELECT '', component, ok, detail, updated_at FROM health;
DROP TABLE health;
ALTER TABLE node_health RENAME TO health;

CREATE TABLE node_log_sources (
    node TEXT NOT NULL,
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    inode BIGINT NOT NULL,
    first_line_hash TEXT NOT NULL,
    read_offset BIGINT NOT NULL,
    lines_read BIGINT NOT NULL DEFAULT 0,
    unreadable_lines BIGINT NOT NULL DEFAULT 0,
    tampered_records BIGINT NOT NULL DEFAULT 0,
    last_line_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (node, path)
);
INSERT INTO node_log_sources SELECT '', path, kind, inode, first_line_hash, read_offset, lines_read,
    unreadable_lines, tampered_records, last_line_at, updated_at FROM log_sources;
DROP TABLE log_sources;
ALTER TABLE node_log_sources RENAME TO log_sources;

-- Changes every node's firewall follows, in order (ids, not clocks: nodes' clocks
-- differ): a release, a network list edited, protection switched.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY,
    at BIGINT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL
);
