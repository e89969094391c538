-- Registrations are each node's own, as logins are (0013).
CREATE TABLE node_contacts (
    node TEXT NOT NULL DEFAULT '',
    account TEXT NOT NULL,
    uri TEXT NOT NULL,
    user_agent TEXT,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    expires_at BIGINT,
    removed_at BIGINT,
    PRIMARY KEY (node, account, uri)
);
INSERT INTO node_contacts
    SELECT '', account, uri, user_agent, first_at, last_at, expires_at, removed_at FROM contacts;
DROP TABLE contacts;
ALTER TABLE node_contacts RENAME TO contacts;
CREATE INDEX contacts_last_at ON contacts (last_at);
