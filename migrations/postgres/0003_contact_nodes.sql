-- Registrations are each node's own, as logins are (0002).
ALTER TABLE contacts ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE contacts DROP CONSTRAINT contacts_pkey;
ALTER TABLE contacts ADD PRIMARY KEY (node, account, uri);
