import { describe, expect, it } from "vitest";
import { fromBase64Url, toBase64Url } from "./base64url";

describe("base64url", () => {
  it("round-trips every byte value without padding", () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    const text = toBase64Url(bytes);
    expect(text).not.toMatch(/[+/=]/);
    expect(new Uint8Array(fromBase64Url(text ?? ""))).toEqual(bytes);
  });

  it("reads unpadded input of every length", () => {
    for (const s of ["", "AQ", "AQI", "AQID"]) {
      expect(toBase64Url(fromBase64Url(s))).toBe(s);
    }
  });
});
