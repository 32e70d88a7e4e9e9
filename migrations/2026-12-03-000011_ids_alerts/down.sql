DROP TABLE ids_eve_positions;
DROP TABLE ids_alerts;
