// The app's one live event feed, as state: events kept newest first (bounded, without repeats), the
// stream's connection state, and which events deserve a toast. The stream itself lives in
// features/events; this is the part with logic.

import { EventSeverity, EventType } from "@opennvr/sdk";
import type { Event } from "@opennvr/sdk";

/** How many events the panel keeps. */
export const KEPT_EVENTS = 500;

export type Connection =
  | { state: "connecting"; attempt: number }
  | { state: "live"; since: number }
  | { state: "disconnected"; error: string; retryAt: number; attempt: number };

export interface FeedState {
  events: Event[];
  connection: Connection;
  /** Events the server dropped for this client when it fell behind (Lagged), since the page loaded. */
  dropped: number;
}

export type FeedAction =
  | { kind: "connecting"; attempt: number }
  | { kind: "connected"; at: number }
  | { kind: "event"; event: Event }
  | { kind: "lagged"; dropped: number }
  | { kind: "disconnected"; error: string; retryAt: number; attempt: number }
  | { kind: "clear" };

export const initialFeed: FeedState = { events: [], connection: { state: "connecting", attempt: 0 }, dropped: 0 };

export function feedReducer(s: FeedState, a: FeedAction): FeedState {
  switch (a.kind) {
    case "connecting":
      return { ...s, connection: { state: "connecting", attempt: a.attempt } };
    case "connected":
      return { ...s, connection: { state: "live", since: a.at } };
    case "disconnected":
      return { ...s, connection: { state: "disconnected", error: a.error, retryAt: a.retryAt, attempt: a.attempt } };
    case "lagged":
      return { ...s, dropped: s.dropped + a.dropped };
    case "clear":
      return { ...s, events: [] };
    case "event": {
      if (a.event.id && s.events.some((e) => e.id === a.event.id)) return s;
      return { ...s, events: [a.event, ...s.events].slice(0, KEPT_EVENTS) };
    }
  }
}

export interface EventFilter {
  cameraIds: readonly string[];
  types: readonly EventType[];
}

/** The events a filter lets through (an empty list means "any"). */
export function filterEvents(events: readonly Event[], f: EventFilter): Event[] {
  return events.filter(
    (e) => (f.cameraIds.length === 0 || f.cameraIds.includes(e.cameraId)) && (f.types.length === 0 || f.types.includes(e.type)),
  );
}

/** Events that interrupt the operator with a toast. */
const TOASTED = new Set<EventType>([
  EventType.CAMERA_OFFLINE,
  EventType.RECORDING_STOPPED,
  EventType.IDS_ALERT,
  EventType.DETECTION,
  EventType.STORAGE_LOW,
  EventType.MEDIA_SERVER_UNAVAILABLE,
]);

export function deservesToast(e: Event): boolean {
  return TOASTED.has(e.type) || e.severity === EventSeverity.CRITICAL;
}
