-- A free-space floor as a share of the recordings volume, beside the floor in bytes: the larger of
-- the two is kept free.
ALTER TABLE site_retention
  ADD COLUMN min_free_percent integer CHECK (min_free_percent BETWEEN 1 AND 90);
-- A site that never set its retention gets a floor, so that a new install never fills its disk:
-- 5 % of the volume or 10 GiB, whichever is larger.
UPDATE site_retention SET min_free_bytes = 10737418240, min_free_percent = 5
  WHERE version = 1 AND min_free_bytes IS NULL;
