// When to renew a short-lived token, and how long to wait before reconnecting: pure arithmetic, so
// that players and streams share it and the tests pin it down.

import { fromBase64Url } from "./base64url";

/** Renew a token when this fraction of its remaining life is left (never closer than `minMarginMs`). */
export const RENEW_FRACTION = 0.2;

/**
 * Milliseconds from `nowMs` until a token expiring at `expireMs` (issued at `issuedMs`) should be
 * renewed: when a fifth of its lifetime remains, but at least `minMarginMs` before expiry, and never
 * sooner than `floorMs` from now (a token already near its end is renewed almost at once, not in a
 * tight loop).
 */
export function renewDelayMs(
  issuedMs: number,
  expireMs: number,
  nowMs: number,
  { minMarginMs = 10_000, floorMs = 1_000 }: { minMarginMs?: number; floorMs?: number } = {},
): number {
  const lifetime = Math.max(0, expireMs - issuedMs);
  const margin = Math.max(minMarginMs, lifetime * RENEW_FRACTION);
  return Math.max(floorMs, expireMs - margin - nowMs);
}

/**
 * The wait before reconnect attempt `attempt` (0-based): exponential from `baseMs`, capped at `capMs`,
 * with "full jitter" (a random point in the upper half) so that many tiles do not retry in step.
 * `random` is injectable for tests.
 */
export function backoffMs(attempt: number, { baseMs = 1_000, capMs = 30_000, random = Math.random } = {}): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/**
 * A JWT's lifetime (`exp` − `iat`, in milliseconds) read from its payload without verifying it (the
 * server verified what it issued); undefined when the token does not say.
 */
export function tokenLifetimeMs(jwt: string): number | undefined {
  try {
    const part = jwt.split(".")[1];
    if (!part) return undefined;
    const json = new TextDecoder().decode(fromBase64Url(part));
    const claims = JSON.parse(json) as { iat?: unknown; exp?: unknown };
    if (typeof claims.iat !== "number" || typeof claims.exp !== "number" || claims.exp <= claims.iat) return undefined;
    return (claims.exp - claims.iat) * 1000;
  } catch {
    return undefined;
  }
}
