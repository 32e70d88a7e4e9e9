// A WHEP client (WebRTC-HTTP Egress Protocol, RFC 9725) as MediaMTX serves it: POST the SDP offer at
// once with the viewer token as bearer, get 201 with the answer, the session's Location and its ICE
// servers (Link), then trickle the browser's candidates with PATCH as they are found, and DELETE the
// session to leave. Sending the offer before ICE gathering ends saves the gathering time.

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

/** ICE servers from the answer's `Link: <stun:…>; rel="ice-server"` headers. */
export function iceServersFromLinks(header: string | null): RTCIceServer[] {
  if (!header) return [];
  const servers: RTCIceServer[] = [];
  for (const link of header.split(/,\s*(?=<)/)) {
    const m = /^<([^>]+)>;\s*rel="ice-server"(?:;\s*username="((?:[^"\\]|\\.)*)";\s*credential="((?:[^"\\]|\\.)*)")?/i.exec(link.trim());
    if (!m?.[1]) continue;
    const server: RTCIceServer = { urls: [m[1]] };
    if (m[2] !== undefined && m[3] !== undefined) {
      server.username = JSON.parse(`"${m[2]}"`) as string;
      server.credential = JSON.parse(`"${m[3]}"`) as string;
    }
    servers.push(server);
  }
  return servers;
}

/** The `application/trickle-ice-sdpfrag` body (RFC 8840) carrying `candidates` of `offer`. */
export function sdpFragment(offer: string, candidates: readonly RTCIceCandidate[]): string {
  const ufrag = /^a=ice-ufrag:(.*)$/m.exec(offer)?.[1]?.trim() ?? "";
  const pwd = /^a=ice-pwd:(.*)$/m.exec(offer)?.[1]?.trim() ?? "";
  const medias: { line: string; mid: string }[] = [];
  let current: { line: string; mid: string } | undefined;
  for (const line of offer.split(/\r?\n/)) {
    if (line.startsWith("m=")) {
      current = { line, mid: "" };
      medias.push(current);
    } else if (current && line.startsWith("a=mid:")) {
      current.mid = line.slice("a=mid:".length).trim();
    }
  }
  let frag = `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\n`;
  medias.forEach((media, index) => {
    const mine = candidates.filter((c) => (c.sdpMid ? c.sdpMid === media.mid : c.sdpMLineIndex === index));
    if (mine.length === 0) return;
    frag += `${media.line}\r\na=mid:${media.mid}\r\n`;
    for (const c of mine) frag += `a=${c.candidate}\r\n`;
  });
  return frag;
}

/** Opens a WHEP session on `url`; rejects with WhepError when the server refuses. */
export async function openWhep(url: string, token: string, signal: AbortSignal): Promise<WhepSession> {
  const pc = new RTCPeerConnection();
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => stream.addTrack(e.track));
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const auth = { Authorization: `Bearer ${token}` };
  let location: string | undefined;
  let etag: string | null = null;
  let queued: RTCIceCandidate[] = [];
  let offer = "";

  const patch = (candidates: RTCIceCandidate[]) => {
    if (!location || candidates.length === 0) return;
    const headers: Record<string, string> = { ...auth, "Content-Type": "application/trickle-ice-sdpfrag" };
    if (etag) headers["If-Match"] = etag;
    void fetch(location, { method: "PATCH", headers, body: sdpFragment(offer, candidates) }).catch(() => undefined);
  };
  pc.addEventListener("icecandidate", (e) => {
    if (!e.candidate?.candidate) return;
    if (location) patch([e.candidate]);
    else queued.push(e.candidate);
  });

  const close = () => {
    pc.close();
    if (location) void fetch(location, { method: "DELETE", headers: auth }).catch(() => undefined);
  };
  try {
    await pc.setLocalDescription(await pc.createOffer());
    offer = pc.localDescription?.sdp ?? "";
    const res = await fetch(url, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/sdp" },
      body: offer,
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
    etag = res.headers.get("ETag");
    const servers = iceServersFromLinks(res.headers.get("Link"));
    if (servers.length) pc.setConfiguration({ iceServers: servers });
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
    patch(queued);
    queued = [];
    return { pc, stream, close };
  } catch (err) {
    close();
    throw err;
  }
}
