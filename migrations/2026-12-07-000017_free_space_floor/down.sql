ALTER TABLE site_retention DROP COLUMN min_free_percent;
