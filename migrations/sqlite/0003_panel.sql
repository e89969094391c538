-- The panel: its admin accounts, networks edited by clicking, and per-address
-- summaries kept by the pipeline so lists stay fast with 100k addresses.
CREATE TABLE admins (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
);

CREATE TABLE networks (
    id INTEGER PRIMARY KEY,
    list TEXT NOT NULL,            -- 'trusted'
    cidr TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (list, cidr)
);

CREATE TABLE offenders (
    ip TEXT PRIMARY KEY,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    services TEXT NOT NULL         -- comma-separated, e.g. 'PJSIP,SIP'
);
CREATE INDEX offenders_last_seen ON offenders (last_seen);
CREATE INDEX offenders_failures ON offenders (failures);

CREATE TABLE offender_accounts (
    ip TEXT NOT NULL,
    account TEXT NOT NULL,
    failures BIGINT NOT NULL,
    PRIMARY KEY (ip, account)
);
CREATE INDEX offender_accounts_account ON offender_accounts (account);
