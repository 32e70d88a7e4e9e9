DROP FUNCTION events_link(integer);
DROP TABLE event_head;
DROP TABLE events;
DROP TABLE event_inbox;
