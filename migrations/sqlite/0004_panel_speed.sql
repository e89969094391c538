-- Running totals so the dashboard never scans the failures themselves, and indexes
-- that give the offenders list its order directly.
CREATE TABLE failure_hours (
    hour BIGINT PRIMARY KEY,       -- unix ms of the hour's start (UTC)
    failures BIGINT NOT NULL
);
INSERT INTO failure_hours (hour, failures)
    SELECT (at / 3600000) * 3600000, COUNT(*) FROM failures WHERE ip IS NOT NULL GROUP BY (at / 3600000) * 3600000;

CREATE TABLE account_totals (
    account TEXT PRIMARY KEY,
    failures BIGINT NOT NULL
);
INSERT INTO account_totals (account, failures)
    SELECT account, SUM(failures) FROM offender_accounts GROUP BY account;
CREATE INDEX account_totals_failures ON account_totals (failures DESC, account);

DROP INDEX offenders_last_seen;
DROP INDEX offenders_failures;
CREATE INDEX offenders_by_last_seen ON offenders (last_seen DESC, ip);
CREATE INDEX offenders_by_failures ON offenders (failures DESC, ip);
CREATE INDEX offenders_by_first_seen ON offenders (first_seen DESC, ip);
