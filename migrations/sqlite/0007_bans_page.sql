-- The bans page lists the newest bans in force and the latest ended ones: with 100k
-- bans, neither may sort them all.
CREATE INDEX bans_created ON bans (created_at, id);
CREATE INDEX bans_ended ON bans (COALESCE(released_at, until_at));
