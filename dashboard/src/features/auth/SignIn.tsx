// Sign-in: username and password, then the second factor the account offers (authenticator code,
// recovery code or passkey); or a passkey alone, without a username. Refusals, lockouts and
// throttling are shown in the server's words.

import { SecondFactorMethod } from "@opennvr/sdk";
import type { GetSignInOptionsResponse, MfaChallenge, SecondFactor } from "@opennvr/sdk";
import { useState } from "react";
import type { SubmitEvent } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { useSession } from "../../api/session";
import { getAssertion, passkeysSupported } from "../../lib/webauthn";
import { Button, Field, Notice, ProblemNote } from "../../ui/kit";
import { AuthFrame } from "./AuthFrame";

export function SignIn({ options, notice }: { options: GetSignInOptionsResponse; notice?: string }) {
  const session = useSession();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [challenge, setChallenge] = useState<MfaChallenge | undefined>();
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState(false);

  const attempt = async (work: () => Promise<void>) => {
    setBusy(true);
    setProblem(undefined);
    try {
      await work();
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const submitPassword = (e: SubmitEvent) => {
    e.preventDefault();
    void attempt(async () => {
      const result = await api.login(username, password);
      if (result.case === "tokens") await session.signedIn(result.value);
      else if (result.case === "mfaRequired") setChallenge(result.value);
    });
  };

  const passwordless = () =>
    attempt(async () => {
      const started = await api.auth.startPasskeyLogin({});
      const c = started.challenge;
      if (!c) throw new Error("The server sent no passkey challenge.");
      const assertion = await getAssertion(c.passkeyRequestOptionsJson);
      await session.signedIn(await api.finishPasskeyLogin(c.ticket, assertion));
    });

  if (challenge) {
    return (
      <AuthFrame title="Second factor">
        <SecondFactorForm
          challenge={challenge}
          busy={busy}
          problem={problem}
          onFactor={(factor) => attempt(async () => session.signedIn(await api.finishMfa(challenge.ticket, factor)))}
          onPasskeyOptions={async () => (await api.auth.startMfa({ ticket: challenge.ticket })).challenge?.passkeyRequestOptionsJson ?? ""}
          onCancel={() => {
            setChallenge(undefined);
            setProblem(undefined);
          }}
        />
      </AuthFrame>
    );
  }

  return (
    <AuthFrame title="Sign in">
      <form onSubmit={submitPassword} className="space-y-4">
        {notice ? <Notice tone="warning">{notice}</Notice> : null}
        <Field label="Username" name="username" autoComplete="username webauthn" required value={username} onChange={(e) => setUsername(e.target.value)} />
        <Field label="Password" name="password" type="password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.target.value)} />
        <ProblemNote problem={problem} />
        <Button type="submit" tone="primary" busy={busy} className="w-full">
          Sign in
        </Button>
      </form>
      {options.passkeysEnabled && passkeysSupported() ? (
        <div className="mt-4 border-t border-slate-200 pt-4 dark:border-slate-800">
          <Button type="button" className="w-full" onClick={passwordless} disabled={busy}>
            Sign in with a passkey
          </Button>
        </div>
      ) : null}
    </AuthFrame>
  );
}

/** The second step: a code from the authenticator app, a recovery code, or a passkey. */
export function SecondFactorForm({
  challenge,
  busy,
  problem,
  onFactor,
  onPasskeyOptions,
  onCancel,
  submitLabel = "Verify",
}: {
  challenge: Pick<MfaChallenge, "methods" | "passkeyRequestOptionsJson">;
  busy: boolean;
  problem: Problem | undefined;
  onFactor: (factor: SecondFactor["method"]) => Promise<void>;
  /** Fresh passkey request options when the challenge carries none (or its challenge was spent). */
  onPasskeyOptions: () => Promise<string>;
  onCancel: () => void;
  submitLabel?: string;
}) {
  const hasTotp = challenge.methods.includes(SecondFactorMethod.TOTP);
  const hasPasskey = challenge.methods.includes(SecondFactorMethod.PASSKEY) && passkeysSupported();
  const [mode, setMode] = useState<"totp" | "recovery">(hasTotp ? "totp" : "recovery");
  const [code, setCode] = useState("");
  const [passkeyProblem, setPasskeyProblem] = useState<Problem | undefined>();
  // The challenge's own passkey options work once; later attempts ask the server for fresh ones.
  const [embeddedSpent, setEmbeddedSpent] = useState(false);

  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    const value = code.trim();
    void onFactor(mode === "totp" ? { case: "totpCode", value: value.replace(/\s/g, "") } : { case: "recoveryCode", value });
  };

  const presentPasskey = async () => {
    setPasskeyProblem(undefined);
    try {
      const embedded = embeddedSpent ? "" : challenge.passkeyRequestOptionsJson;
      setEmbeddedSpent(true);
      const options = embedded || (await onPasskeyOptions());
      const assertion = await getAssertion(options);
      await onFactor({ case: "passkeyAssertionJson", value: assertion });
    } catch (err) {
      setPasskeyProblem(describeError(err));
    }
  };

  return (
    <div className="space-y-4">
      {hasPasskey ? (
        <Button type="button" tone="primary" className="w-full" onClick={() => void presentPasskey()} disabled={busy}>
          Use a passkey
        </Button>
      ) : null}
      <ProblemNote problem={passkeyProblem} />
      <form onSubmit={submit} className="space-y-4">
        {mode === "totp" ? (
          <Field
            label="Authentication code"
            name="totp"
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9 ]{6,7}"
            required
            autoFocus
            value={code}
            onChange={(e) => setCode(e.target.value)}
            hint="The six digits your authenticator app shows for OpenNVR."
          />
        ) : (
          <Field label="Recovery code" name="recovery" autoComplete="off" required autoFocus value={code} onChange={(e) => setCode(e.target.value)} hint="One of the codes you saved when you enrolled. Each works once." />
        )}
        <ProblemNote problem={problem} />
        <div className="flex flex-wrap gap-2">
          <Button type="submit" tone="primary" busy={busy}>
            {submitLabel}
          </Button>
          {hasTotp ? (
            <Button
              type="button"
              tone="ghost"
              onClick={() => {
                setMode(mode === "totp" ? "recovery" : "totp");
                setCode("");
              }}
            >
              {mode === "totp" ? "Use a recovery code" : "Use the authenticator app"}
            </Button>
          ) : null}
          <Button type="button" tone="ghost" onClick={onCancel}>
            Cancel
          </Button>
        </div>
      </form>
    </div>
  );
}
