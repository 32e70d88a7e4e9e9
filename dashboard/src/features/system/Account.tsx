// The signed-in user's own account: sessions (revoke any but this one from here), second factors
// (add a passkey, see what is enrolled).

import { CredentialType, timestampDate } from "@opennvr/sdk";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import { keys } from "../../api/queries";
import { useMe, useSession } from "../../api/session";
import { createCredential, passkeysSupported } from "../../lib/webauthn";
import { Badge, Button, Card, Field, PageHeader, ProblemNote, QueryState } from "../../ui/kit";
import { useToast } from "../../ui/toasts";

function Sessions() {
  const queries = useQueryClient();
  const { signOut } = useSession();
  const q = useQuery({ queryKey: keys.sessions, queryFn: async () => (await api.auth.listSessions({ pageSize: 200 })).sessions });
  const revoke = useMutation({
    mutationFn: (id: string) => api.auth.revokeSession({ sessionId: id }),
    onSuccess: () => void queries.invalidateQueries({ queryKey: keys.sessions }),
  });
  return (
    <Card>
      <h2 className="mb-3 font-semibold">Your sessions</h2>
      <QueryState query={q} label="Loading sessions" rows={2}>
        {(data) => (
        <ul className="divide-y divide-slate-200 text-sm dark:divide-slate-800" aria-label="Sessions">
          {data.map((s) => (
            <li key={s.id} className="flex flex-wrap items-center gap-2 py-2">
              <span className="min-w-0 flex-1">
                <span className="block truncate font-medium" title={s.userAgent}>
                  {s.userAgent || "Unknown client"}
                </span>
                <span className="text-xs text-slate-500">
                  {s.clientAddress} · since {s.createTime ? timestampDate(s.createTime).toLocaleString() : "?"}
                </span>
              </span>
              {s.current ? (
                <>
                  <Badge tone="ok">This session</Badge>
                  <Button tone="ghost" onClick={() => void signOut()}>
                    Sign out
                  </Button>
                </>
              ) : (
                <Button tone="ghost" onClick={() => revoke.mutate(s.id)} aria-label={`Revoke session ${s.userAgent}`}>
                  Revoke
                </Button>
              )}
            </li>
          ))}
        </ul>
        )}
      </QueryState>
      <ProblemNote problem={revoke.error ? describeError(revoke.error) : undefined} />
    </Card>
  );
}

function Factors() {
  const me = useMe();
  const { state, reload } = useSession();
  const toast = useToast();
  const queries = useQueryClient();
  const [name, setName] = useState("");
  const q = useQuery({ queryKey: ["credentials"], queryFn: async () => (await api.auth.listCredentials({ pageSize: 100 })).credentials });
  const passkeysOn = state.kind === "signedIn" && state.options.passkeysEnabled && passkeysSupported();
  const add = useMutation({
    mutationFn: async () => {
      const started = await api.auth.startPasskeyRegistration({});
      const credentialJson = await createCredential(started.creationOptionsJson);
      return api.auth.finishPasskeyRegistration({ registrationToken: started.registrationToken, credentialJson, name: name || "Passkey" });
    },
    onSuccess: async () => {
      toast({ title: "Passkey added", tone: "success" });
      setName("");
      await queries.invalidateQueries({ queryKey: ["credentials"] });
      await reload();
    },
  });
  return (
    <Card>
      <h2 className="mb-3 font-semibold">Second factors</h2>
      <QueryState query={q} label="Loading second factors" rows={2}>
        {(data) => (
        <ul className="mb-4 divide-y divide-slate-200 text-sm dark:divide-slate-800" aria-label="Second factors">
          {data.length === 0 ? <li className="py-2">None yet.</li> : null}
          {data.map((c) => (
            <li key={c.id} className="flex items-center gap-2 py-2">
              <Badge>{c.type === CredentialType.PASSKEY ? "Passkey" : "Authenticator app"}</Badge>
              <span>{c.name}</span>
              <span className="ml-auto text-xs text-slate-500">{c.lastUseTime ? `used ${timestampDate(c.lastUseTime).toLocaleString()}` : "never used"}</span>
            </li>
          ))}
        </ul>
        )}
      </QueryState>
      {passkeysOn ? (
        <form
          className="flex flex-wrap items-end gap-2"
          onSubmit={(e) => {
            e.preventDefault();
            add.mutate();
          }}
        >
          <div className="min-w-48 flex-1">
            <Field label="Passkey name" placeholder="e.g. YubiKey 5C" value={name} onChange={(e) => setName(e.target.value)} />
          </div>
          <Button type="submit" tone="primary" busy={add.isPending}>
            Add a passkey
          </Button>
        </form>
      ) : (
        <p className="text-sm text-slate-600 dark:text-slate-400">
          {me.user?.passkeyCount ? "" : "Passkeys are not available on this server or browser (WebAuthn needs the server's domain name)."}
        </p>
      )}
      <ProblemNote problem={add.error ? describeError(add.error) : undefined} />
    </Card>
  );
}

export function Account() {
  const me = useMe();
  return (
    <div>
      <PageHeader title="Account" />
      <p className="mb-4 text-sm text-slate-600 dark:text-slate-400">
        Signed in as <strong>{me.user?.username}</strong>.
      </p>
      <div className="grid gap-4 lg:grid-cols-2">
        <Sessions />
        <Factors />
      </div>
    </div>
  );
}
