-- Logins are each node's own: extension 1001 of one PBX is another phone than 1001
-- of the next, and its breach history must not mix with it. '' rows (written before)
-- are adopted by the node that starts first, as log cursors are.
ALTER TABLE logins ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE logins DROP CONSTRAINT logins_pkey;
ALTER TABLE logins ADD PRIMARY KEY (node, account, ip);
CREATE INDEX logins_last_at ON logins (last_at);
