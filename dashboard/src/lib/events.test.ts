import { create, EventSchema, EventSeverity, EventType } from "@opennvr/sdk";
import { describe, expect, it } from "vitest";
import { deservesToast, feedReducer, filterEvents, initialFeed, KEPT_EVENTS } from "./events";

const ev = (id: string, type: EventType, cameraId = "cam-a", severity = EventSeverity.INFO) =>
  create(EventSchema, { id, type, cameraId, severity });

describe("event feed", () => {
  it("keeps events newest first", () => {
    let s = feedReducer(initialFeed, { kind: "event", event: ev("1", EventType.CAMERA_ONLINE) });
    s = feedReducer(s, { kind: "event", event: ev("2", EventType.CAMERA_OFFLINE) });
    expect(s.events.map((e) => e.id)).toEqual(["2", "1"]);
  });

  it("ignores an event it already holds (a reconnect that repeats one)", () => {
    const once = feedReducer(initialFeed, { kind: "event", event: ev("1", EventType.CAMERA_ONLINE) });
    expect(feedReducer(once, { kind: "event", event: ev("1", EventType.CAMERA_ONLINE) })).toBe(once);
  });

  it("keeps a bounded number of events", () => {
    let s = initialFeed;
    for (let i = 0; i < KEPT_EVENTS + 20; i++) s = feedReducer(s, { kind: "event", event: ev(String(i), EventType.SEGMENT_COMPLETE) });
    expect(s.events).toHaveLength(KEPT_EVENTS);
    expect(s.events[0]?.id).toBe(String(KEPT_EVENTS + 19));
  });

  it("tracks the connection and the events the server dropped", () => {
    let s = feedReducer(initialFeed, { kind: "connected", at: 5 });
    expect(s.connection).toEqual({ state: "live", since: 5 });
    s = feedReducer(s, { kind: "lagged", dropped: 3 });
    s = feedReducer(s, { kind: "disconnected", error: "network", retryAt: 9, attempt: 1 });
    expect(s.connection.state).toBe("disconnected");
    expect(s.dropped).toBe(3);
  });
});

describe("event filters and toasts", () => {
  const events = [ev("1", EventType.CAMERA_OFFLINE, "a"), ev("2", EventType.DETECTION, "b"), ev("3", EventType.CAMERA_ONLINE, "b")];

  it("filter by camera and by type; empty filters let everything through", () => {
    expect(filterEvents(events, { cameraIds: ["b"], types: [] }).map((e) => e.id)).toEqual(["2", "3"]);
    expect(filterEvents(events, { cameraIds: [], types: [EventType.CAMERA_OFFLINE] }).map((e) => e.id)).toEqual(["1"]);
    expect(filterEvents(events, { cameraIds: [], types: [] })).toHaveLength(3);
  });

  it("toast what an operator must see and not routine events", () => {
    expect(deservesToast(ev("1", EventType.CAMERA_OFFLINE))).toBe(true);
    expect(deservesToast(ev("2", EventType.IDS_ALERT))).toBe(true);
    expect(deservesToast(ev("3", EventType.SEGMENT_COMPLETE))).toBe(false);
    expect(deservesToast(ev("4", EventType.CAMERA_UPDATED, "a", EventSeverity.CRITICAL))).toBe(true);
  });
});
