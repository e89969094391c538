-- Several panel accounts: an admin changes anything, a viewer only looks.
ALTER TABLE admins ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
