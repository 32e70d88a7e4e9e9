// The live grid: every camera the user may see, in layouts from 1×1 to 4×4 plus 1+5 and 1+7, filtered
// by a label group, paged; layout and group in the URL (shareable) and remembered on this device.
// Keys: digits pick a layout, arrows move the focus, Enter opens, f full screen, ? the shortcuts.

import type { Camera } from "@opennvr/sdk";
import { Link, useNavigate } from "@tanstack/react-router";
import { ChevronLeft, ChevronRight, Maximize } from "lucide-react";
import { useEffect, useMemo, useRef, useState } from "react";
import { useCameraStatuses, useCameras } from "../../api/queries";
import { useCan } from "../../api/session";
import { describeError } from "../../api/errors";
import { LAYOUTS, layout as layoutOf, layoutForKey, moveFocus, pageCount, pageItems } from "../../lib/layout";
import type { Direction, LayoutId } from "../../lib/layout";
import { liveRoute } from "../../routes";
import { Dialog } from "../../ui/dialog";
import { Button, EmptyState, ProblemNote, Skeleton } from "../../ui/kit";
import { Tile } from "./Tile";

const REMEMBER = "opennvr.grid";

function remembered(): { layout?: LayoutId; group?: string } {
  try {
    return JSON.parse(localStorage.getItem(REMEMBER) ?? "{}") as { layout?: LayoutId; group?: string };
  } catch {
    return {};
  }
}

/** Label groups ("key: value") the cameras carry, sorted. */
function groupsOf(cameras: readonly Camera[]): string[] {
  const set = new Set<string>();
  for (const c of cameras) for (const [k, v] of Object.entries(c.labels)) set.add(`${k}: ${v}`);
  return [...set].sort();
}

function inGroup(c: Camera, group: string | undefined): boolean {
  if (!group) return true;
  const i = group.indexOf(": ");
  return i > 0 && c.labels[group.slice(0, i)] === group.slice(i + 2);
}

export function LiveGrid() {
  const search = liveRoute.useSearch();
  const navigate = useNavigate({ from: "/" });
  const saved = remembered();
  const layoutId: LayoutId = search.layout ?? saved.layout ?? "2x2";
  const group = search.group ?? (search.layout ? undefined : saved.group);
  const page = (search.page ?? 1) - 1;
  const cameras = useCameras();
  const statuses = useCameraStatuses();
  const canAdd = useCan("camera.write");
  const [focusWanted, setFocus] = useState(0);
  const [help, setHelp] = useState(false);
  const gridRef = useRef<HTMLDivElement>(null);
  const tileRefs = useRef<(HTMLDivElement | null)[]>([]);

  useEffect(() => {
    localStorage.setItem(REMEMBER, JSON.stringify({ layout: layoutId, group }));
  }, [layoutId, group]);

  // A layout taken from this device's memory goes into the URL, so that the address shares it.
  useEffect(() => {
    if (!search.layout) void navigate({ search: (prev) => ({ ...prev, layout: layoutId, group }), replace: true });
  }, [search.layout, layoutId, group, navigate]);

  const filtered = useMemo(() => (cameras.data ?? []).filter((c) => inGroup(c, group)), [cameras.data, group]);
  const shown = pageItems(layoutId, filtered, page);
  // The focused tile stays one that exists when the layout or page shrinks.
  const focus = Math.min(focusWanted, Math.max(0, shown.length - 1));
  const pages = pageCount(layoutId, filtered.length);
  const spec = layoutOf(layoutId);

  const go = (next: { layout?: LayoutId; group?: string; page?: number }) =>
    void navigate({ search: (prev) => ({ ...prev, layout: layoutId, group, ...next }) });

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement) return;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const picked = layoutForKey(e.key);
      if (picked) {
        go({ layout: picked, page: undefined });
        return;
      }
      if (e.key === "?") {
        setHelp(true);
        return;
      }
      if (e.key === "f") {
        const el = tileRefs.current[focus] ?? gridRef.current;
        void (document.fullscreenElement ? document.exitFullscreen() : el?.requestFullscreen());
        return;
      }
      if (e.key.startsWith("Arrow")) {
        e.preventDefault();
        const next = moveFocus(layoutId, focus, e.key as Direction, shown.length);
        setFocus(next);
        tileRefs.current[next]?.focus();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  });

  const groups = groupsOf(cameras.data ?? []);

  return (
    <div className="flex h-[calc(100vh-5.5rem)] flex-col gap-3">
      <div className="flex flex-wrap items-center gap-2">
        <h1 className="sr-only">Live</h1>
        <div role="group" aria-label="Layout" className="flex flex-wrap gap-1">
          {LAYOUTS.map((id) => (
            <Button key={id} tone={id === layoutId ? "primary" : "secondary"} aria-pressed={id === layoutId} onClick={() => go({ layout: id, page: undefined })} title={`Layout ${layoutOf(id).label} (key ${layoutOf(id).key})`}>
              {layoutOf(id).label}
            </Button>
          ))}
        </div>
        {groups.length ? (
          <label className="flex items-center gap-2 text-sm">
            Group
            <select className="rounded-md border border-slate-300 bg-white px-2 py-2 dark:border-slate-700 dark:bg-slate-900" value={group ?? ""} onChange={(e) => go({ group: e.target.value || undefined, page: undefined })}>
              <option value="">All cameras</option>
              {groups.map((g) => (
                <option key={g}>{g}</option>
              ))}
            </select>
          </label>
        ) : null}
        <div className="ml-auto flex items-center gap-1">
          {pages > 1 ? (
            <>
              <Button tone="ghost" aria-label="Previous page" disabled={page <= 0} onClick={() => go({ page: page })}>
                <ChevronLeft className="h-4 w-4" aria-hidden />
              </Button>
              <span className="text-sm">
                Page {Math.min(page + 1, pages)} of {pages}
              </span>
              <Button tone="ghost" aria-label="Next page" disabled={page + 1 >= pages} onClick={() => go({ page: page + 2 })}>
                <ChevronRight className="h-4 w-4" aria-hidden />
              </Button>
            </>
          ) : null}
          <Button tone="ghost" aria-label="Full screen" onClick={() => void gridRef.current?.requestFullscreen()}>
            <Maximize className="h-4 w-4" aria-hidden />
          </Button>
          <Button tone="ghost" aria-label="Keyboard shortcuts" onClick={() => setHelp(true)}>
            ?
          </Button>
        </div>
      </div>

      {cameras.isPending ? (
        <div className="grid flex-1 grid-cols-1 gap-2 md:grid-cols-2" role="status" aria-label="Loading cameras">
          {[0, 1, 2, 3].map((i) => (
            <Skeleton key={i} className="min-h-40" />
          ))}
        </div>
      ) : cameras.error ? (
        <ProblemNote problem={describeError(cameras.error)} />
      ) : filtered.length === 0 ? (
        <EmptyState title={group ? "No cameras in this group" : "No cameras yet"}>
          {canAdd ? (
            <Link to="/cameras/new" className="font-medium text-teal-700 underline dark:text-teal-400">
              Add one
            </Link>
          ) : (
            "An administrator has not given you access to any camera."
          )}
        </EmptyState>
      ) : (
        <div
          ref={gridRef}
          data-testid="grid"
          data-layout={layoutId}
          className="grid flex-1 grid-cols-1 gap-2 bg-slate-950 md:[grid-template-columns:repeat(var(--n),minmax(0,1fr))] md:[grid-template-rows:repeat(var(--n),minmax(0,1fr))]"
          style={{ ["--n" as string]: spec.size }}
        >
          {shown.map((camera, i) => {
            const area = spec.tiles[i];
            return (
              <Tile
                key={camera.id}
                ref={(el) => {
                  tileRefs.current[i] = el;
                }}
                camera={camera}
                status={statuses.data?.get(camera.id)}
                focused={i === focus}
                onFocus={() => setFocus(i)}
                onOpen={() => void navigate({ to: "/camera/$cameraId", params: { cameraId: camera.id } })}
                style={
                  area
                    ? ({
                        "--col": `${area.column} / span ${area.columnSpan}`,
                        "--row": `${area.row} / span ${area.rowSpan}`,
                      } as React.CSSProperties)
                    : undefined
                }
              />
            );
          })}
        </div>
      )}

      <Dialog open={help} onOpenChange={setHelp} title="Keyboard shortcuts">
        <dl className="grid grid-cols-[auto_1fr] gap-x-4 gap-y-2 text-sm">
          {LAYOUTS.map((id) => (
            <div key={id} className="contents">
              <dt>
                <kbd>{layoutOf(id).key}</kbd>
              </dt>
              <dd>Layout {layoutOf(id).label}</dd>
            </div>
          ))}
          <dt>
            <kbd>← ↑ → ↓</kbd>
          </dt>
          <dd>Move between cameras</dd>
          <dt>
            <kbd>Enter</kbd>
          </dt>
          <dd>Open the focused camera</dd>
          <dt>
            <kbd>f</kbd>
          </dt>
          <dd>Full screen</dd>
          <dt>
            <kbd>?</kbd>
          </dt>
          <dd>This list</dd>
        </dl>
      </Dialog>
    </div>
  );
}
