DROP TABLE camera_retention;
DROP TABLE site_retention;
DROP TABLE hold_cameras;
DROP TABLE holds;
DROP TABLE segments;
DROP FUNCTION recording_summaries_insert, recording_summaries_update, recording_summaries_delete;
DROP TABLE recording_summaries;
