import { describe, expect, it } from "vitest";
import { backoffMs, renewDelayMs, tokenLifetimeMs } from "./timing";

describe("token renewal", () => {
  const minute = 60_000;

  it("renews a five-minute token when a fifth of its life is left", () => {
    expect(renewDelayMs(0, 5 * minute, 0)).toBe(4 * minute);
  });

  it("keeps at least the minimum margin for short tokens", () => {
    expect(renewDelayMs(0, 30_000, 0, { minMarginMs: 10_000 })).toBe(20_000);
  });

  it("counts from now, not from issue", () => {
    expect(renewDelayMs(0, 5 * minute, 3 * minute)).toBe(1 * minute);
  });

  it("renews soon but not at once when the token is nearly spent or already expired", () => {
    expect(renewDelayMs(0, 5 * minute, 5 * minute - 2_000)).toBe(1_000);
    expect(renewDelayMs(0, 5 * minute, 10 * minute)).toBe(1_000);
  });
});

describe("reconnect backoff", () => {
  it("doubles from the base and stays within the upper half of each step", () => {
    expect(backoffMs(0, { random: () => 0 })).toBe(500);
    expect(backoffMs(0, { random: () => 1 })).toBe(1_000);
    expect(backoffMs(3, { random: () => 0 })).toBe(4_000);
  });

  it("never exceeds the cap however many attempts failed", () => {
    expect(backoffMs(50, { random: () => 1 })).toBe(30_000);
    expect(backoffMs(50, { random: () => 0 })).toBe(15_000);
  });
});

describe("token lifetime", () => {
  const jwt = (claims: object) => `e30.${btoa(JSON.stringify(claims)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")}.sig`;

  it("is exp minus iat, whatever this machine's clock says", () => {
    expect(tokenLifetimeMs(jwt({ iat: 1_700_000_000, exp: 1_700_000_300 }))).toBe(300_000);
  });

  it("is unknown for a token without times or not a JWT", () => {
    expect(tokenLifetimeMs(jwt({ sub: "x" }))).toBeUndefined();
    expect(tokenLifetimeMs("not-a-jwt")).toBeUndefined();
  });
});
