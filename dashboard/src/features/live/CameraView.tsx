// One camera, large: the live picture (full screen on demand), its status from MediaMTX (codec,
// resolution, bitrate, readers) and a snapshot of the current frame.

import { Link, useNavigate } from "@tanstack/react-router";
import { ArrowLeft, Camera as CameraIcon, Maximize } from "lucide-react";
import { useEffect, useRef, useState } from "react";
import { useCameraStatuses, useCameras } from "../../api/queries";
import { useCan } from "../../api/session";
import { cameraViewRoute } from "../../routes";
import { Badge, Button, Card, EmptyState, Loading } from "../../ui/kit";
import { Player, usePageVisible } from "./Player";
import type { PlayerStatus } from "./Player";
import { cameraCondition } from "./Tile";

function formatBitrate(bps: bigint | number): string {
  const n = Number(bps);
  if (!n) return "—";
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} Mbit/s` : `${Math.round(n / 1e3)} kbit/s`;
}

export function CameraView() {
  const { cameraId } = cameraViewRoute.useParams();
  const cameras = useCameras();
  const statuses = useCameraStatuses();
  const canEdit = useCan("camera.write");
  const visible = usePageVisible();
  const navigate = useNavigate();
  const [play, setPlay] = useState<PlayerStatus>({ state: "idle" });
  const frame = useRef<HTMLDivElement>(null);
  const [snapshot, setSnapshot] = useState<string | undefined>();
  useEffect(
    () => () => {
      if (snapshot) URL.revokeObjectURL(snapshot);
    },
    [snapshot],
  );

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.target instanceof HTMLInputElement) return;
      if (e.key === "f") void (document.fullscreenElement ? document.exitFullscreen() : frame.current?.requestFullscreen());
      if (e.key === "Escape" && !document.fullscreenElement) void navigate({ to: "/" });
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [navigate]);

  if (cameras.isPending) return <Loading label="Loading camera" />;
  const camera = cameras.data?.find((c) => c.id === cameraId);
  if (!camera) {
    return (
      <EmptyState title="Camera not found">
        It may have been deleted, or you may not have access to it. <Link to="/" className="underline">Back to the grid</Link>
      </EmptyState>
    );
  }
  const status = statuses.data?.get(camera.id);
  const condition = cameraCondition(camera, status);
  const video = status?.tracks.find((t) => t.width > 0);

  const takeSnapshot = () => {
    const v = frame.current?.querySelector("video");
    if (!v || !v.videoWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    canvas.getContext("2d")?.drawImage(v, 0, 0);
    canvas.toBlob((blob) => {
      if (blob) setSnapshot(URL.createObjectURL(blob));
    }, "image/jpeg", 0.92);
  };

  return (
    <div className="grid gap-4 lg:grid-cols-[1fr_20rem]">
      <div className="space-y-2">
        <div className="flex flex-wrap items-center gap-2">
          <Button asChild tone="ghost">
            <Link to="/" aria-label="Back to the grid">
              <ArrowLeft className="h-4 w-4" aria-hidden />
            </Link>
          </Button>
          <h1 className="text-xl font-semibold">{camera.name}</h1>
          {condition ? <Badge tone={condition.tone}>{condition.label}</Badge> : null}
          {play.state === "stale" ? <Badge tone="warn">Stale</Badge> : null}
          <div className="ml-auto flex gap-1">
            <Button onClick={takeSnapshot} disabled={play.state !== "playing"}>
              <CameraIcon className="h-4 w-4" aria-hidden /> Snapshot
            </Button>
            <Button aria-label="Full screen" onClick={() => void frame.current?.requestFullscreen()}>
              <Maximize className="h-4 w-4" aria-hidden />
            </Button>
          </div>
        </div>
        <div ref={frame} data-testid="single-view" data-state={play.state} data-transport={play.transport ?? ""} className="relative aspect-video overflow-hidden rounded-md bg-black">
          <Player cameraId={camera.id} active={visible && camera.enabled} onStatus={setPlay} className="h-full w-full object-contain" />
          {play.state !== "playing" && play.state !== "stale" ? (
            <div role="status" className="absolute inset-0 flex items-center justify-center p-4 text-center text-sm text-slate-300">
              {camera.enabled ? (play.message ?? "Connecting…") : "This camera is disabled."}
            </div>
          ) : null}
        </div>
        {snapshot ? (
          <Card>
            <p className="mb-2 text-sm font-medium">Snapshot</p>
            <img src={snapshot} alt={`Snapshot of ${camera.name}`} className="max-h-64 rounded" />
            <a href={snapshot} download={`${camera.name}-${new Date().toISOString()}.jpg`} className="mt-2 inline-block text-sm text-teal-700 underline dark:text-teal-400">
              Download
            </a>
          </Card>
        ) : null}
      </div>
      <Card>
        <h2 className="mb-3 font-semibold">Status</h2>
        <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-2 text-sm">
          <dt className="text-slate-500">Source</dt>
          <dd>{status?.available ? "Receiving" : (status?.lastError || "Not receiving")}</dd>
          <dt className="text-slate-500">Codec</dt>
          <dd>{status?.tracks.map((t) => t.codec).join(", ") || "—"}</dd>
          <dt className="text-slate-500">Resolution</dt>
          <dd>{video ? `${video.width}×${video.height}` : play.width ? `${play.width}×${play.height}` : "—"}</dd>
          <dt className="text-slate-500">Bitrate</dt>
          <dd>{status ? formatBitrate(status.inboundBitrateBps) : "—"}</dd>
          <dt className="text-slate-500">Viewers</dt>
          <dd>{status?.readerCount ?? "—"}</dd>
          <dt className="text-slate-500">Recording</dt>
          <dd>{status?.recording ? "Yes" : "No"}</dd>
          <dt className="text-slate-500">Playing over</dt>
          <dd>{play.transport === "hls" ? "HLS" : play.transport === "webrtc" ? "WebRTC" : "—"}</dd>
        </dl>
        {canEdit ? (
          <Button asChild className="mt-4">
            <Link to="/cameras/$cameraId/edit" params={{ cameraId: camera.id }}>
              Edit camera
            </Link>
          </Button>
        ) : null}
      </Card>
    </div>
  );
}
