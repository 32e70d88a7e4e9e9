// One camera in the grid: the picture, its name, and what is wrong when something is (offline, no
// signal, stale, reconnecting), as badges a glance can read.

import { CameraState } from "@opennvr/sdk";
import type { Camera, CameraStatus } from "@opennvr/sdk";
import { forwardRef, useState } from "react";
import type { KeyboardEvent, MouseEvent } from "react";
import { Badge } from "../../ui/kit";
import { Player, useInView, usePageVisible } from "./Player";
import type { PlayerStatus } from "./Player";

/** What the camera's own state says, before any player runs. */
export function cameraCondition(camera: Camera, status: CameraStatus | undefined): { label: string; tone: "bad" | "warn" } | undefined {
  if (!camera.enabled || status?.state === CameraState.DISABLED) return { label: "Disabled", tone: "warn" };
  if (status?.state === CameraState.OFFLINE) return { label: "Offline", tone: "bad" };
  if (status && !status.available && status.state === CameraState.CONNECTING) return { label: "No signal", tone: "warn" };
  return undefined;
}

export const Tile = forwardRef<HTMLDivElement, {
  camera: Camera;
  status: CameraStatus | undefined;
  focused: boolean;
  onOpen: () => void;
  onFocus: () => void;
  style?: React.CSSProperties;
}>(function Tile({ camera, status, focused, onOpen, onFocus, style }, ref) {
  const [inViewRef, inView] = useInView<HTMLDivElement>();
  const pageVisible = usePageVisible();
  const [play, setPlay] = useState<PlayerStatus>({ state: "idle" });
  const condition = cameraCondition(camera, status);
  const active = inView && pageVisible && camera.enabled;

  const open = (e: MouseEvent | KeyboardEvent) => {
    if ("key" in e && e.key !== "Enter" && e.key !== " ") return;
    e.preventDefault();
    onOpen();
  };

  return (
    <div
      ref={(el) => {
        inViewRef.current = el;
        if (typeof ref === "function") ref(el);
        else if (ref) ref.current = el;
      }}
      role="button"
      tabIndex={focused ? 0 : -1}
      aria-label={`${camera.name}${condition ? ` (${condition.label})` : ""}`}
      data-testid="tile"
      data-camera={camera.name}
      data-state={play.state}
      data-transport={play.transport ?? ""}
      onClick={open}
      onKeyDown={open}
      onFocus={onFocus}
      style={style}
      className="group relative min-h-40 overflow-hidden rounded-md bg-black md:[grid-column:var(--col)] md:[grid-row:var(--row)] text-white outline-offset-2 focus-visible:outline-2 focus-visible:outline-teal-400 md:min-h-0"
    >
      <Player cameraId={camera.id} active={active} onStatus={setPlay} className="absolute inset-0 h-full w-full object-contain" />
      <div className="pointer-events-none absolute inset-x-0 top-0 flex items-start justify-between gap-2 bg-gradient-to-b from-black/70 to-transparent p-2">
        <span className="truncate text-sm font-medium drop-shadow">{camera.name}</span>
        <span className="flex flex-wrap justify-end gap-1">
          {condition ? <Badge tone={condition.tone}>{condition.label}</Badge> : null}
          {play.state === "stale" ? (
            <Badge tone="warn" title="No new frames for a few seconds">
              Stale
            </Badge>
          ) : null}
          {play.state === "playing" || play.state === "stale" ? (
            <Badge tone="muted">{play.transport === "hls" ? "HLS" : "WebRTC"}</Badge>
          ) : null}
        </span>
      </div>
      {play.state === "connecting" || play.state === "retrying" || play.state === "unavailable" ? (
        <div className="absolute inset-0 flex items-center justify-center p-4 text-center text-xs text-slate-300" role="status">
          {play.state === "connecting" ? "Connecting…" : play.message}
        </div>
      ) : null}
      {!active && camera.enabled ? <div className="absolute inset-0 flex items-center justify-center text-xs text-slate-400">Paused</div> : null}
    </div>
  );
});
