// A WHEP client (WebRTC-HTTP Egress Protocol) as MediaMTX serves it: POST an SDP offer with the viewer
// token as bearer, get 201 with the answer and the session's Location, DELETE it to leave. The offer
// is sent once ICE gathering is complete (no trickle), which is quick on a LAN.

export class WhepError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "WhepError";
  }
}

export interface WhepSession {
  pc: RTCPeerConnection;
  stream: MediaStream;
  close: () => void;
}

function gathered(pc: RTCPeerConnection, timeoutMs: number): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      pc.removeEventListener("icegatheringstatechange", check);
      clearTimeout(timer);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Opens a WHEP session on `url`; rejects with WhepError when the server refuses. */
export async function openWhep(url: string, token: string, signal: AbortSignal): Promise<WhepSession> {
  const pc = new RTCPeerConnection();
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => stream.addTrack(e.track));
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  let location: string | undefined;
  const close = () => {
    pc.close();
    if (location) {
      void fetch(location, { method: "DELETE", headers: { Authorization: `Bearer ${token}` } }).catch(() => undefined);
    }
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 3000);
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${token}` },
      body: pc.localDescription?.sdp ?? "",
      signal,
    });
    if (res.status !== 201) {
      let detail = await res.text().catch(() => "");
      try {
        detail = (JSON.parse(detail) as { error?: string }).error ?? detail;
      } catch {
        // plain text
      }
      throw new WhepError(res.status, `WebRTC refused (${res.status})${detail ? `: ${detail}` : ""}`);
    }
    const where = res.headers.get("Location");
    if (where) location = new URL(where, url).toString();
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    return { pc, stream, close };
  } catch (err) {
    close();
    throw err;
  }
}
