// The app's one API client: grpc-web to the origin that served the page (same origin: no CORS, and
// the WebAuthn origin matches). The access token lives only in memory; the refresh token is kept in
// this tab's sessionStorage so that a reload does not sign the operator out (see README: it is
// readable by script on the page, which the Content-Security-Policy keeps to the page's own bundle).

import { createClient, timestampDate } from "@opennvr/sdk";
import type { Tokens } from "@opennvr/sdk";
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

export const api = createClient(window.location.origin, {
  onTokens: persist,
  // Refresh a minute before the access token expires (on the next call).
  refreshMarginMs: 60_000,
});

/** Every destructive call goes through this: a step-up demand opens the dialog and retries once. */
export const stepUp = new StepUpCoordinator();
