DROP INDEX detections_time_idx;
CREATE INDEX detections_time_idx ON detections USING brin (frame_time);
