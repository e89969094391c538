-- Who logged into which account from where: what the breach detector compares with.
CREATE TABLE logins (
    account TEXT NOT NULL,
    ip TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (account, ip)
);

-- A breach or a toll-fraud trip, what was done about it, and the lock it put on an
-- extension until an admin unlocks it.
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- breach | toll_fraud
    severity TEXT NOT NULL,             -- warning | critical
    account TEXT NOT NULL,
    tech TEXT,                          -- PJSIP, SIP, IAX2 when the calls named it
    ip TEXT,
    at BIGINT NOT NULL,
    reason TEXT NOT NULL,
    calls INTEGER,                      -- toll fraud: calls of the burst up to the trip
    numbers TEXT NOT NULL DEFAULT '',   -- numbers dialled, comma-separated
    actions TEXT NOT NULL DEFAULT '',   -- what sipwarden did, one line each
    locked INTEGER NOT NULL DEFAULT 0,  -- the extension was locked by it
    unlocked_at BIGINT,
    unlocked_by TEXT
);
CREATE INDEX incidents_at ON incidents (at);
CREATE INDEX incidents_account ON incidents (account, kind, at);
