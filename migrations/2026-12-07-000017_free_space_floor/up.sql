-- A free-space floor as a share of the recordings volume, beside the floor in bytes: the larger of
-- the two is kept free.
ALTER TABLE site_retention
  ADD COLUMN min_free_percent integer CHECK (min_free_percent BETWEEN 1 AND 90);
-- A new site (no user yet) starts with a floor, so that it never fills its disk: 5 % of the volume
-- or 10 GiB, whichever is larger. A site already in use keeps the limits it chose.
UPDATE site_retention SET min_free_bytes = 10737418240, min_free_percent = 5
  WHERE version = 1 AND min_free_bytes IS NULL AND NOT EXISTS (SELECT 1 FROM users);
