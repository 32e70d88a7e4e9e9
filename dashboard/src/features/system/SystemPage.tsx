// The site's health: the media plane (MediaMTX reachable, last sync, pending changes), storage and the
// AI adapters, each shown only to those allowed to read it.

import { AdapterHealth, CircuitState, timestampDate } from "@opennvr/sdk";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { useQuery } from "@tanstack/react-query";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import { keys } from "../../api/queries";
import { useCan } from "../../api/session";
import { Badge, Card, EmptyState, Loading, PageHeader, ProblemNote, QueryState } from "../../ui/kit";

export function bytes(n: bigint | number): string {
  let v = Number(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u] ?? "B"}`;
}

function when(t: Timestamp | undefined): string {
  return t ? timestampDate(t).toLocaleString() : "never";
}

function MediaPlane() {
  const q = useQuery({ queryKey: keys.mediaPlane, queryFn: () => api.cameras.getMediaPlaneStatus({}), refetchInterval: 5_000 });
  return (
    <Card>
      <h2 className="mb-3 font-semibold">Media server (MediaMTX)</h2>
      <QueryState query={q} label="Loading media server status" rows={2}>
        {(data) => (
        <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-2 text-sm" data-testid="media-plane">
          <dt className="text-slate-500">State</dt>
          <dd>
            {!data.configured ? (
              <Badge tone="warn">Not configured</Badge>
            ) : data.reachable ? (
              <Badge tone="ok">Reachable</Badge>
            ) : (
              <Badge tone="bad">Unreachable</Badge>
            )}
          </dd>
          <dt className="text-slate-500">Version</dt>
          <dd>{data.mediamtxVersion || "—"}</dd>
          <dt className="text-slate-500">Last sync</dt>
          <dd>{when(data.lastSyncTime)}</dd>
          <dt className="text-slate-500">Pending changes</dt>
          <dd>{data.pendingChanges}</dd>
          <dt className="text-slate-500">Cameras failing</dt>
          <dd>{data.failedCameras}</dd>
          {data.lastError ? (
            <>
              <dt className="text-slate-500">Last error</dt>
              <dd className="text-red-700 dark:text-red-400">{data.lastError}</dd>
            </>
          ) : null}
        </dl>
        )}
      </QueryState>
    </Card>
  );
}

function Storage() {
  const q = useQuery({ queryKey: keys.storage, queryFn: () => api.recordings.getStorageStats({}), refetchInterval: 30_000 });
  return (
    <Card>
      <h2 className="mb-3 font-semibold">Storage</h2>
      <QueryState query={q} label="Loading storage" rows={2}>
        {(data) => (
        <div className="space-y-3 text-sm">
          {data.volumes.map((v) => {
            const used = Number(v.totalBytes - v.freeBytes);
            const pct = v.totalBytes > 0n ? Math.round((used / Number(v.totalBytes)) * 100) : 0;
            return (
              <div key={v.path}>
                <div className="flex justify-between">
                  <span className="font-mono">{v.path}</span>
                  <span>
                    {bytes(v.freeBytes)} free of {bytes(v.totalBytes)} {v.low ? <Badge tone="bad">Low</Badge> : null}
                  </span>
                </div>
                <div className="mt-1 h-2 overflow-hidden rounded bg-slate-200 dark:bg-slate-800" role="meter" aria-label={`${v.path} used`} aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
                  <div className={`h-full ${v.low ? "bg-red-600" : "bg-teal-600"}`} style={{ width: `${pct}%` }} />
                </div>
              </div>
            );
          })}
          <p>
            Recordings: {bytes(data.recordedBytes)} (under hold: {bytes(data.heldBytes)}), writing {bytes(data.writeBytesPerSecond)}/s; oldest from {when(data.oldestSegmentTime)}.
          </p>
        </div>
        )}
      </QueryState>
    </Card>
  );
}

function Adapters() {
  const q = useQuery({
    queryKey: keys.adapters,
    queryFn: async () => {
      const [list, statuses] = await Promise.all([api.inference.listAdapters({ pageSize: 500 }), api.inference.listAdapterStatuses({ pageSize: 500 })]);
      const byId = new Map(statuses.statuses.map((s) => [s.adapterId, s]));
      return list.adapters.map((a) => ({ adapter: a, status: byId.get(a.id) }));
    },
    refetchInterval: 10_000,
  });
  return (
    <Card>
      <h2 className="mb-3 font-semibold">AI adapters</h2>
      {q.isPending ? (
        <Loading label="Loading adapters" rows={2} />
      ) : q.error ? (
        <ProblemNote problem={describeError(q.error)} />
      ) : q.data.length === 0 ? (
        <p className="text-sm text-slate-600 dark:text-slate-400">No adapters registered. Models run outside the server, as HTTP adapters.</p>
      ) : (
        <ul className="divide-y divide-slate-200 text-sm dark:divide-slate-800">
          {q.data.map(({ adapter, status }) => (
            <li key={adapter.id} className="flex flex-wrap items-center gap-2 py-2">
              <span className="font-medium">{adapter.name}</span>
              {status?.health === AdapterHealth.HEALTHY ? <Badge tone="ok">Healthy</Badge> : <Badge tone="bad">Unhealthy</Badge>}
              {status?.circuitState === CircuitState.OPEN ? <Badge tone="bad">Circuit open</Badge> : null}
              <span className="text-slate-500">
                {status ? `${status.inFlight}/${status.maxConcurrency} busy, ${status.queued} queued` : ""}
              </span>
              {status?.lastError ? <span className="w-full text-xs text-red-700 dark:text-red-400">{status.lastError}</span> : null}
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

export function SystemPage() {
  const media = useCan("camera.write");
  const storage = useCan("storage.read");
  const adapters = useCan("inference.read");
  if (!media && !storage && !adapters) return <EmptyState title="Not available">Your account may not use this screen.</EmptyState>;
  return (
    <div>
      <PageHeader title="System" />
      <div className="grid gap-4 lg:grid-cols-2">
        {media ? <MediaPlane /> : null}
        {storage ? <Storage /> : null}
        {adapters ? <Adapters /> : null}
      </div>
    </div>
  );
}
