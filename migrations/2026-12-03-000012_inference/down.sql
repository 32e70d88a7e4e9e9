DROP TABLE detections;
DROP TABLE adapter_bindings;
DROP TABLE adapters;
