-- The function of migration 14 comes back with that migration's own up; nothing else changed.
SELECT 1;
