// The app's one WatchEvents stream (browsers allow few connections per origin over HTTP/1.1): it
// feeds the events panel and the toasts, reconnects with backoff and shows when it is disconnected.

import { EventType } from "@opennvr/sdk";
import type { Event } from "@opennvr/sdk";
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useEffectEvent, useReducer } from "react";
import type { ReactNode } from "react";
import { api, reportError } from "../../api/client";
import { describeError } from "../../api/errors";
import { keys, useCameras } from "../../api/queries";
import { useCan } from "../../api/session";
import { deservesToast, feedReducer, initialFeed } from "../../lib/events";
import type { FeedState } from "../../lib/events";
import { backoffMs } from "../../lib/timing";
import { useToast } from "../../ui/toasts";
import { describeEvent } from "./describe";

const FeedContext = createContext<FeedState & { dispatchClear: () => void }>({ ...initialFeed, dispatchClear: () => undefined });

/** Events that change what the camera listings and statuses show. */
const REFRESHES_CAMERAS = new Set<EventType>([
  EventType.CAMERA_CREATED,
  EventType.CAMERA_UPDATED,
  EventType.CAMERA_DELETED,
  EventType.CAMERA_ONLINE,
  EventType.CAMERA_OFFLINE,
  EventType.RECORDING_STARTED,
  EventType.RECORDING_STOPPED,
]);

export function EventFeedProvider({ children }: { children: ReactNode }) {
  const allowed = useCan("event.watch");
  const [state, dispatch] = useReducer(feedReducer, initialFeed);
  const toast = useToast();
  const queries = useQueryClient();
  const cameras = useCameras();
  const onEvent = useEffectEvent((e: Event) => {
    dispatch({ kind: "event", event: e });
    if (REFRESHES_CAMERAS.has(e.type)) {
      void queries.invalidateQueries({ queryKey: keys.cameras });
      void queries.invalidateQueries({ queryKey: keys.statuses });
    }
    if (deservesToast(e)) {
      const names = new Map((cameras.data ?? []).map((c) => [c.id, c.name]));
      const d = describeEvent(e, names);
      toast({ id: e.id || undefined, title: d.title, body: d.detail, tone: d.tone });
    }
  });

  useEffect(() => {
    if (!allowed) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let attempt = 0;
    const run = async () => {
      dispatch({ kind: "connecting", attempt });
      try {
        const stream = api.events.watchEvents({}, { signal: abort.signal });
        let live = false;
        for await (const r of stream) {
          if (!live) {
            live = true;
            attempt = 0;
            dispatch({ kind: "connected", at: Date.now() });
          }
          if (r.kind.case === "event") onEvent(r.kind.value);
          else if (r.kind.case === "lagged") dispatch({ kind: "lagged", dropped: Number(r.kind.value.droppedEvents) });
        }
        throw new Error("the server ended the event stream");
      } catch (err) {
        if (abort.signal.aborted) return;
        reportError(err);
        const wait = backoffMs(attempt++);
        dispatch({ kind: "disconnected", error: describeError(err).message, retryAt: Date.now() + wait, attempt });
        timer = setTimeout(() => void run(), wait);
      }
    };
    void run();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [allowed]);

  return <FeedContext.Provider value={{ ...state, dispatchClear: () => dispatch({ kind: "clear" }) }}>{children}</FeedContext.Provider>;
}

export function useFeed() {
  return useContext(FeedContext);
}

/** The stream's state in the header: nothing while live, a clear mark when not. */
export function FeedIndicator() {
  const { connection } = useFeed();
  const allowed = useCan("event.watch");
  if (!allowed) return null;
  if (connection.state === "live") {
    return (
      <span className="mr-2 hidden items-center gap-1 text-xs text-emerald-700 sm:inline-flex dark:text-emerald-400" data-testid="feed-state" data-state="live">
        <span className="h-2 w-2 rounded-full bg-emerald-500" aria-hidden /> Live events
      </span>
    );
  }
  const text = connection.state === "connecting" ? "Connecting…" : `Events disconnected (${connection.error})`;
  return (
    <span role="status" className="mr-2 inline-flex items-center gap-1 text-xs text-amber-700 dark:text-amber-400" data-testid="feed-state" data-state={connection.state} title={text}>
      <span className="h-2 w-2 rounded-full bg-amber-500" aria-hidden /> {connection.state === "connecting" ? "Connecting…" : "Disconnected"}
    </span>
  );
}
