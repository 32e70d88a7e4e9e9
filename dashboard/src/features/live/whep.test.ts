import { describe, expect, it } from "vitest";
import { iceServersFromLinks, sdpFragment } from "./whep";

const OFFER = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "a=ice-ufrag:uF1",
  "a=ice-pwd:pW1pW1pW1pW1pW1pW1pW1pW1",
  "a=mid:0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=ice-ufrag:uF1",
  "a=ice-pwd:pW1pW1pW1pW1pW1pW1pW1pW1",
  "a=mid:1",
  "",
].join("\r\n");

const candidate = (sdpMid: string, text: string) => ({ candidate: text, sdpMid, sdpMLineIndex: Number(sdpMid) }) as RTCIceCandidate;

describe("WHEP trickle fragment", () => {
  it("carries the credentials and each candidate under its media section", () => {
    const frag = sdpFragment(OFFER, [candidate("0", "candidate:1 1 udp 2122260223 10.0.0.5 50000 typ host"), candidate("1", "candidate:2 1 udp 2122260223 10.0.0.5 50001 typ host")]);
    expect(frag).toBe(
      "a=ice-ufrag:uF1\r\na=ice-pwd:pW1pW1pW1pW1pW1pW1pW1pW1\r\n" +
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 10.0.0.5 50000 typ host\r\n" +
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=candidate:2 1 udp 2122260223 10.0.0.5 50001 typ host\r\n",
    );
  });

  it("leaves out media sections without candidates", () => {
    const frag = sdpFragment(OFFER, [candidate("1", "candidate:2 1 udp 1 10.0.0.5 50001 typ host")]);
    expect(frag).not.toContain("m=video");
    expect(frag).toContain("a=mid:1");
  });
});

describe("ICE servers from Link headers", () => {
  it("reads STUN and TURN servers with credentials", () => {
    const servers = iceServersFromLinks(
      '<stun:stun.example:3478>; rel="ice-server", <turn:turn.example:3478?transport=udp>; rel="ice-server"; username="u\\"1"; credential="p"; credential-type="password"',
    );
    expect(servers).toEqual([
      { urls: ["stun:stun.example:3478"] },
      { urls: ["turn:turn.example:3478?transport=udp"], username: 'u"1', credential: "p" },
    ]);
  });

  it("ignores other links and a missing header", () => {
    expect(iceServersFromLinks('</x>; rel="next"')).toEqual([]);
    expect(iceServersFromLinks(null)).toEqual([]);
  });
});
