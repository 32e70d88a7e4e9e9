-- ListDetections across every camera pages newest first by (frame_time, id); a BRIN index cannot
-- give that order, so a page would sort the whole table. A B-tree gives it, and serves retention's
-- "older than" as well.
DROP INDEX detections_time_idx;
CREATE INDEX detections_time_idx ON detections (frame_time DESC, id DESC);
