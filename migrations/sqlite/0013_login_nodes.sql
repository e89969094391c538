-- Logins are each node's own: extension 1001 of one PBX is another phone than 1001
-- of the next, and its breach history must not mix with it. '' rows (written before)
-- are adopted by the node that starts first, as log cursors are.
CREATE TABLE node_logins (
    node TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (node, account, ip)
);
INSERT INTO node_logins SELECT '', account, ip, first_at, last_at FROM logins;
DROP TABLE logins;
ALTER TABLE node_logins RENAME TO logins;
CREATE INDEX logins_last_at ON logins (last_at);
