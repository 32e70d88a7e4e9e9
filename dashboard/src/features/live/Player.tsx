// One live camera: WebRTC through WHEP with a viewer token (renewed before it expires), HLS through
// hls.js when WebRTC fails, reconnecting by itself with backoff; a "stale" badge when frames stop;
// nothing playing while the tile is out of view or the tab hidden.

import { timestampDate } from "@opennvr/sdk";
import type { CreateViewerTokenResponse } from "@opennvr/sdk";
import { useEffect, useEffectEvent, useRef, useState } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import { backoffMs, renewDelayMs, tokenLifetimeMs } from "../../lib/timing";
import { openWhep } from "./whep";

export type Transport = "webrtc" | "hls";

/** A viewer token and when it expires by this browser's clock. */
interface ViewerGrant {
  response: CreateViewerTokenResponse;
  received: number;
  expires: number;
}
export type PlayState = "idle" | "connecting" | "playing" | "stale" | "retrying" | "unavailable";

export interface PlayerStatus {
  state: PlayState;
  transport?: Transport;
  message?: string;
  width?: number;
  height?: number;
}

/** Frames must arrive at least this often, or the picture is called stale. */
const STALE_AFTER_MS = 4_000;
/** A picture stale for this long is reconnected. */
const RECONNECT_STALE_MS = 15_000;
/** WebRTC that has not shown a frame by then counts as failed, and HLS is tried. */
const FIRST_FRAME_MS = 10_000;

/** Calls `onFrame` for every decoded frame the element presents (or, without requestVideoFrameCallback, on time updates). */
function watchFrames(video: HTMLVideoElement, onFrame: () => void): () => void {
  let stopped = false;
  if ("requestVideoFrameCallback" in video) {
    let handle = 0;
    const tick = () => {
      if (stopped) return;
      onFrame();
      handle = video.requestVideoFrameCallback(tick);
    };
    handle = video.requestVideoFrameCallback(tick);
    return () => {
      stopped = true;
      video.cancelVideoFrameCallback(handle);
    };
  }
  const h = () => onFrame();
  (video as HTMLVideoElement).addEventListener("timeupdate", h);
  return () => (video as HTMLVideoElement).removeEventListener("timeupdate", h);
}

export function usePageVisible(): boolean {
  const [visible, setVisible] = useState(() => document.visibilityState === "visible");
  useEffect(() => {
    const h = () => setVisible(document.visibilityState === "visible");
    document.addEventListener("visibilitychange", h);
    return () => document.removeEventListener("visibilitychange", h);
  }, []);
  return visible;
}

export function useInView<T extends Element>(): [React.RefObject<T | null>, boolean] {
  const ref = useRef<T>(null);
  const [inView, setInView] = useState(true);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof IntersectionObserver === "undefined") return;
    const io = new IntersectionObserver((entries) => setInView(entries.some((e) => e.isIntersecting)), { threshold: 0.01 });
    io.observe(el);
    return () => io.disconnect();
  }, []);
  return [ref, inView];
}

/**
 * Plays `cameraId` into a <video> while `active`. Reports its state through `onStatus`.
 * `prefer` forces a transport (the single-camera view's switch); by default WebRTC first.
 */
export function Player({
  cameraId,
  active,
  onStatus,
  className = "",
  muted = true,
}: {
  cameraId: string;
  active: boolean;
  onStatus?: (s: PlayerStatus) => void;
  className?: string;
  muted?: boolean;
}) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const report = useEffectEvent((s: PlayerStatus) => onStatus?.(s));

  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    if (!active) {
      report({ state: "idle" });
      return;
    }
    const abort = new AbortController();
    let grant: ViewerGrant | undefined;
    let renewTimer: ReturnType<typeof setTimeout> | undefined;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let staleTimer: ReturnType<typeof setInterval> | undefined;
    let teardown: (() => void) | undefined;
    let attempt = 0;
    // Each connection attempt has a generation; callbacks of an older one do nothing.
    let generation = 0;
    let status: PlayerStatus = { state: "connecting" };
    const set = (s: PlayerStatus) => {
      status = s;
      report(s);
    };
    const current = (g: number) => g === generation && !abort.signal.aborted;

    const renewToken = async (): Promise<ViewerGrant> => {
      const r = await api.cameras.createViewerToken({ cameraId }, { signal: abort.signal });
      const received = Date.now();
      // The token's lifetime by the server's own clock (exp - iat): a browser clock that is off does
      // not make the renewal spin or lapse.
      const lifetime = tokenLifetimeMs(r.token) ?? (r.expireTime ? timestampDate(r.expireTime).getTime() - received : 60_000);
      grant = { response: r, received, expires: received + lifetime };
      clearTimeout(renewTimer);
      renewTimer = setTimeout(() => {
        renewToken().catch(() => undefined);
      }, renewDelayMs(received, grant.expires, Date.now(), { floorMs: 5_000 }));
      return grant;
    };

    const stopStream = () => {
      teardown?.();
      teardown = undefined;
      clearInterval(staleTimer);
      video.srcObject = null;
      video.removeAttribute("src");
      video.load();
    };

    const reconnect = (g: number, message: string) => {
      if (!current(g)) return;
      generation++;
      stopStream();
      const wait = backoffMs(attempt++);
      set({ state: "retrying", message: `${message} — retrying in ${Math.ceil(wait / 1000)} s`, transport: status.transport });
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => void connect(), wait);
    };

    /** Resolves when the first frame shows; rejects after FIRST_FRAME_MS or when torn down. */
    const firstFrame = (g: number) =>
      new Promise<void>((resolve, reject) => {
        if (!current(g)) {
          reject(new Error("stopped"));
          return;
        }
        const t = setTimeout(() => {
          stop();
          reject(new Error("no picture arrived"));
        }, FIRST_FRAME_MS);
        const stop = watchFrames(video, () => {
          clearTimeout(t);
          stop();
          resolve();
        });
        abort.signal.addEventListener("abort", () => {
          clearTimeout(t);
          stop();
          reject(new Error("stopped"));
        });
      });

    const watchStale = (g: number, transport: Transport) => {
      let lastFrame = Date.now();
      const stopFrames = watchFrames(video, () => {
        lastFrame = Date.now();
        if (status.state !== "playing") set({ state: "playing", transport, width: video.videoWidth, height: video.videoHeight });
      });
      staleTimer = setInterval(() => {
        const quiet = Date.now() - lastFrame;
        if (quiet > RECONNECT_STALE_MS) reconnect(g, "No frames");
        else if (quiet > STALE_AFTER_MS && status.state === "playing") set({ ...status, state: "stale", message: "No new frames" });
      }, 1_000);
      const previous = teardown;
      teardown = () => {
        stopFrames();
        previous?.();
      };
    };

    const playWebRtc = async (g: number, r: CreateViewerTokenResponse) => {
      const session = await openWhep(r.whepUrl, r.token, abort.signal);
      if (!current(g)) {
        session.close();
        throw new Error("stopped");
      }
      teardown = session.close;
      session.pc.addEventListener("connectionstatechange", () => {
        if (session.pc.connectionState === "failed") reconnect(g, "WebRTC connection lost");
      });
      video.srcObject = session.stream;
      await video.play().catch(() => undefined);
      await firstFrame(g);
      watchStale(g, "webrtc");
    };

    const playHls = async (g: number, r: CreateViewerTokenResponse) => {
      // hls.js is loaded only when a tile falls back to HLS: most views never need it.
      const { default: Hls } = await import("hls.js");
      if (!current(g)) throw new Error("stopped");
      if (!Hls.isSupported()) throw new Error("This browser cannot play HLS");
      const hls = new Hls({
        lowLatencyMode: true,
        liveSyncDurationCount: 2,
        // The latest token: hls.js keeps fetching playlists and segments for as long as it plays.
        xhrSetup: (xhr) => xhr.setRequestHeader("Authorization", `Bearer ${grant?.response.token ?? r.token}`),
      });
      teardown = () => hls.destroy();
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (data.fatal) reconnect(g, `HLS: ${data.details}`);
      });
      hls.loadSource(r.hlsUrl);
      hls.attachMedia(video);
      await video.play().catch(() => undefined);
      await firstFrame(g);
      watchStale(g, "hls");
    };

    const connect = async () => {
      const g = ++generation;
      set({ state: "connecting", transport: status.transport });
      try {
        const r = (grant && grant.expires - Date.now() > 15_000 ? grant : await renewToken()).response;
        if (!current(g)) return;
        if (!r.whepUrl && !r.hlsUrl) {
          set({ state: "unavailable", message: "Live view is not configured on the server (no WHEP or HLS URL)." });
          return;
        }
        let webrtcProblem: string | undefined;
        if (r.whepUrl) {
          try {
            await playWebRtc(g, r);
            attempt = 0;
            return;
          } catch (err) {
            if (!current(g)) return;
            webrtcProblem = err instanceof Error ? err.message : String(err);
            stopStream();
          }
        }
        if (r.hlsUrl) {
          set({ state: "connecting", transport: "hls", message: webrtcProblem });
          await playHls(g, r);
          attempt = 0;
          return;
        }
        throw new Error(webrtcProblem ?? "no transport");
      } catch (err) {
        reconnect(g, err instanceof Error ? err.message : describeError(err).message);
      }
    };

    void connect();
    return () => {
      abort.abort();
      generation++;
      clearTimeout(renewTimer);
      clearTimeout(retryTimer);
      stopStream();
    };
  }, [cameraId, active]);

  return <video ref={videoRef} className={className} muted={muted} playsInline autoPlay />;
}
