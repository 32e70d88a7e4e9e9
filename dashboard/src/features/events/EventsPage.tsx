// The events panel: what the shared live stream brought since the page opened, filtered by camera
// and type (filters in the URL).

import { EventType, timestampDate } from "@opennvr/sdk";
import { useNavigate } from "@tanstack/react-router";
import { useMemo } from "react";
import { useCameras } from "../../api/queries";
import { filterEvents } from "../../lib/events";
import { eventsRoute } from "../../routes";
import { Badge, Button, EmptyState, Notice, PageHeader, SelectField } from "../../ui/kit";
import { describeEvent, EVENT_LABELS } from "./describe";
import { useFeed } from "./feed";

export function EventsPage() {
  const search = eventsRoute.useSearch();
  const navigate = useNavigate({ from: "/events" });
  const feed = useFeed();
  const cameras = useCameras();
  const names = useMemo(() => new Map((cameras.data ?? []).map((c) => [c.id, c.name])), [cameras.data]);
  const type = search.type ? (EventType[search.type as keyof typeof EventType] as EventType | undefined) : undefined;
  const shown = filterEvents(feed.events, { cameraIds: search.camera ? [search.camera] : [], types: type !== undefined ? [type] : [] });

  return (
    <div>
      <PageHeader title="Events">
        <Button onClick={feed.dispatchClear} disabled={feed.events.length === 0}>
          Clear
        </Button>
      </PageHeader>
      {feed.connection.state === "disconnected" ? (
        <div className="mb-3">
          <Notice tone="warning">
            Disconnected from the event stream ({feed.connection.error}). Reconnecting by itself; events meanwhile may be missed.
          </Notice>
        </div>
      ) : null}
      {feed.dropped > 0 ? (
        <div className="mb-3">
          <Notice tone="warning">The server dropped {feed.dropped} events while this page was behind.</Notice>
        </div>
      ) : null}
      <div className="mb-4 grid gap-3 sm:grid-cols-2 md:max-w-2xl">
        <SelectField label="Camera" value={search.camera ?? ""} onChange={(e) => void navigate({ search: (s) => ({ ...s, camera: e.target.value || undefined }) })}>
          <option value="">All cameras</option>
          {(cameras.data ?? []).map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </SelectField>
        <SelectField label="Type" value={search.type ?? ""} onChange={(e) => void navigate({ search: (s) => ({ ...s, type: e.target.value || undefined }) })}>
          <option value="">All types</option>
          {Object.entries(EVENT_LABELS).map(([value, label]) => (
            <option key={value} value={EventType[Number(value)]}>
              {label}
            </option>
          ))}
        </SelectField>
      </div>
      {shown.length === 0 ? (
        <EmptyState title="No events yet">Events appear here as they happen: cameras going on- or offline, recordings, detections, alerts.</EmptyState>
      ) : (
        <ol aria-label="Events" className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white dark:divide-slate-800 dark:border-slate-800 dark:bg-slate-900">
          {shown.map((e, i) => {
            const d = describeEvent(e, names);
            return (
              <li key={e.id || i} className="flex flex-wrap items-baseline gap-2 p-3 text-sm">
                <time className="w-20 shrink-0 font-mono text-xs text-slate-500" dateTime={e.time ? timestampDate(e.time).toISOString() : undefined}>
                  {e.time ? timestampDate(e.time).toLocaleTimeString() : ""}
                </time>
                <Badge tone={d.tone === "critical" ? "bad" : d.tone === "warning" ? "warn" : d.tone === "success" ? "ok" : "muted"}>{EVENT_LABELS[e.type] ?? "Event"}</Badge>
                <span className="font-medium">{d.title}</span>
                {d.detail ? <span className="text-slate-600 dark:text-slate-400">{d.detail}</span> : null}
              </li>
            );
          })}
        </ol>
      )}
    </div>
  );
}
