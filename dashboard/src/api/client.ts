// The app's one API client: grpc-web to the origin that served the page (same origin: no CORS, and
// the WebAuthn origin matches). The access token lives only in memory; the refresh token is kept in
// this tab's sessionStorage so that a reload does not sign the operator out (see README: it is
// readable by script on the page, which the Content-Security-Policy keeps to the page's own bundle).

import { Code, createClient, errorFacts, timestampDate } from "@opennvr/sdk";
import type { Interceptor, Tokens } from "@opennvr/sdk";
import { StepUpCoordinator } from "../lib/stepup";

const REFRESH_KEY = "opennvr.session";

interface StoredSession {
  refreshToken: string;
  /** Milliseconds since the epoch. */
  expires: number;
}

function persist(tokens: Tokens | undefined): void {
  try {
    if (!tokens?.refreshToken) {
      sessionStorage.removeItem(REFRESH_KEY);
      return;
    }
    const expires = tokens.refreshTokenExpireTime ? timestampDate(tokens.refreshTokenExpireTime).getTime() : 0;
    const stored: StoredSession = { refreshToken: tokens.refreshToken, expires };
    sessionStorage.setItem(REFRESH_KEY, JSON.stringify(stored));
  } catch {
    // Storage may be unavailable (private mode); the session then lasts as long as the page.
  }
}

/** The refresh token this tab kept, if it has not expired. */
export function storedRefreshToken(): string | undefined {
  try {
    const raw = sessionStorage.getItem(REFRESH_KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Partial<StoredSession>;
    if (typeof s.refreshToken !== "string" || (typeof s.expires === "number" && s.expires > 0 && s.expires < Date.now())) {
      sessionStorage.removeItem(REFRESH_KEY);
      return undefined;
    }
    return s.refreshToken;
  } catch {
    return undefined;
  }
}

export function forgetStoredSession(): void {
  persist(undefined);
}

/** The one step-up path: a unary call refused for want of a recent second factor opens the dialog and runs again, once. */
export const stepUp = new StepUpCoordinator();

const stepUpInterceptor: Interceptor = (next) => (req) => (req.stream ? next(req) : stepUp.run(() => next(req)));

export const api = createClient(window.location.origin, {
  onTokens: persist,
  // The SDK refreshes the access token on the first call in its last minute.
  refreshMarginMs: 60_000,
  interceptors: [stepUpInterceptor],
});

const endedListeners = new Set<(notice: string) => void>();

/** Called with a notice when a call shows that the session is over (revoked, expired, user disabled). */
export function onSessionEnded(listener: (notice: string) => void): () => void {
  endedListeners.add(listener);
  return () => endedListeners.delete(listener);
}

/**
 * Whether `err` says the session is over. A wrong password or code says something else, and so does
 * an expired access token (a stream the server ends at its expiry): the next call refreshes it.
 */
export function endsSession(err: unknown): boolean {
  const f = errorFacts(err);
  return (
    f.code === Code.Unauthenticated && f.reason !== "ERROR_REASON_INVALID_CREDENTIALS" && f.reason !== "ERROR_REASON_TOKEN_EXPIRED"
  );
}

/** Every failed call of the app passes through here: one that ends the session signs the page out. */
export function reportError(err: unknown): void {
  if (!endsSession(err)) return;
  const notice = `Your session ended: ${errorFacts(err).message}. Sign in again.`;
  for (const l of endedListeners) l(notice);
}
