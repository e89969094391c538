-- Registrations as Asterisk reports them: which extension has a contact where, since
-- when, until when. The contact is the phone's own text: shown, never trusted.
CREATE TABLE contacts (
    account TEXT NOT NULL,
    uri TEXT NOT NULL,
    user_agent TEXT,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    expires_at BIGINT,                  -- NULL: until Asterisk reports it removed
    removed_at BIGINT,
    PRIMARY KEY (account, uri)
);
CREATE INDEX contacts_last_at ON contacts (last_at);
