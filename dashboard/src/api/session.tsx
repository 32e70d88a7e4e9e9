// Who is signed in, and the transitions between signed out, first-run setup, second-factor enrolment
// and signed in. The rest of the app reads it through useSession().

import { errorFacts } from "@opennvr/sdk";
import type { GetSignInOptionsResponse, Tokens, WhoAmIResponse } from "@opennvr/sdk";
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";
import { api, forgetStoredSession, onSessionEnded, storedRefreshToken } from "./client";

export type SessionState =
  | { kind: "loading" }
  | { kind: "unreachable"; message: string }
  | { kind: "signedOut"; options: GetSignInOptionsResponse; notice?: string }
  /** Signed in, but the role needs a second factor first: the session may only enrol one. */
  | { kind: "enrolling"; me: WhoAmIResponse; options: GetSignInOptionsResponse }
  | { kind: "signedIn"; me: WhoAmIResponse; options: GetSignInOptionsResponse };

interface SessionApi {
  state: SessionState;
  /** Call after new tokens arrived (bootstrap, login, passkey, enrolment + refresh). */
  signedIn: (tokens: Tokens) => Promise<void>;
  signOut: (notice?: string) => Promise<void>;
  /** Re-reads the caller (after a change of own credentials). */
  reload: () => Promise<void>;
}

const SessionContext = createContext<SessionApi | undefined>(undefined);

async function describeCaller(options: GetSignInOptionsResponse): Promise<SessionState> {
  const me = await api.auth.whoAmI({});
  return me.mfaEnrolmentRequired ? { kind: "enrolling", me, options } : { kind: "signedIn", me, options };
}

/** Where a fresh page starts: the sign-in options, and this tab's session if it kept one. */
async function initialState(): Promise<SessionState> {
  let options: GetSignInOptionsResponse;
  try {
    options = await api.auth.getSignInOptions({});
  } catch (err) {
    return { kind: "unreachable", message: errorFacts(err).message };
  }
  const refresh = storedRefreshToken();
  if (refresh && !options.setupRequired) {
    try {
      await api.resumeSession(refresh);
      return await describeCaller(options);
    } catch {
      forgetStoredSession();
    }
  }
  return { kind: "signedOut", options };
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ kind: "loading" });
  const queries = useQueryClient();

  useEffect(() => {
    let live = true;
    void initialState().then((s) => live && setState(s));
    return () => {
      live = false;
    };
  }, []);

  // A call that finds the session over (revoked elsewhere, expired) signs this page out, saying why.
  useEffect(
    () =>
      onSessionEnded((notice) => {
        forgetStoredSession();
        queries.clear();
        setState((s) => (s.kind === "signedIn" || s.kind === "enrolling" ? { kind: "signedOut", options: s.options, notice } : s));
      }),
    [queries],
  );

  const signedIn = useCallback(async () => {
    const options = await api.auth.getSignInOptions({});
    setState(await describeCaller(options));
  }, []);

  const signOut = useCallback(
    async (notice?: string) => {
      try {
        await api.logout();
      } catch {
        // The session may already be gone on the server; signing out locally is what matters.
      }
      forgetStoredSession();
      queries.clear();
      const options = await api.auth.getSignInOptions({}).catch(() => undefined);
      setState(options ? { kind: "signedOut", options, notice } : await initialState());
    },
    [queries],
  );

  const reload = useCallback(async () => {
    if (state.kind === "signedIn" || state.kind === "enrolling") setState(await describeCaller(state.options));
  }, [state]);

  const value = useMemo(() => ({ state, signedIn, signOut, reload }), [state, signedIn, signOut, reload]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionApi {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}

/** The signed-in caller; only for screens rendered once signed in. */
export function useMe(): WhoAmIResponse {
  const { state } = useSession();
  if (state.kind !== "signedIn" && state.kind !== "enrolling") throw new Error("useMe while signed out");
  return state.me;
}

/** Whether the caller holds `permission` site-wide. */
export function useCan(permission: string): boolean {
  const me = useMe();
  return me.permissions.includes(permission);
}
