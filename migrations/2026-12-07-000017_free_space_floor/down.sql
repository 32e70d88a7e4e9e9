UPDATE site_retention SET min_free_bytes = NULL WHERE version = 1 AND min_free_bytes = 10737418240;
ALTER TABLE site_retention DROP COLUMN min_free_percent;
