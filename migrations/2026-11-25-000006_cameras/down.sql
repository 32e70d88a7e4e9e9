DROP TABLE camera_grants;
DROP TABLE cameras;
