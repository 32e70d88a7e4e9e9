// Enrolling an authenticator app: the secret as a QR code and as text, a code to confirm it (a wrong
// code asks again, same secret), then the recovery codes — shown once, to copy or download.

import type { StartTotpEnrollmentResponse } from "@opennvr/sdk";
import { useEffect, useState } from "react";
import type { SubmitEvent } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { Button, Field, Loading, Notice, ProblemNote } from "../../ui/kit";
import { QrCode } from "./QrCode";

export function EnrolTotp({ onDone, intro }: { onDone: () => Promise<void>; intro?: string }) {
  const [started, setStarted] = useState<StartTotpEnrollmentResponse | undefined>();
  const [code, setCode] = useState("");
  const [recovery, setRecovery] = useState<string[] | undefined>();
  const [saved, setSaved] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState(false);

  const start = async () => {
    setProblem(undefined);
    try {
      setStarted(await api.auth.startTotpEnrollment({}));
    } catch (err) {
      setProblem(describeError(err));
    }
  };

  useEffect(() => {
    api.auth.startTotpEnrollment({}).then(setStarted, (err: unknown) => setProblem(describeError(err)));
  }, []);

  const confirm = async (e: SubmitEvent) => {
    e.preventDefault();
    if (!started) return;
    setBusy(true);
    setProblem(undefined);
    try {
      const done = await api.auth.finishTotpEnrollment({
        enrollmentToken: started.enrollmentToken,
        code: code.replace(/\s/g, ""),
        name: "Authenticator app",
      });
      setRecovery(done.recoveryCodes);
    } catch (err) {
      setProblem(describeError(err));
      setCode("");
    } finally {
      setBusy(false);
    }
  };

  const finish = async () => {
    setBusy(true);
    try {
      await onDone();
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  if (recovery) {
    const text = recovery.join("\n") + "\n";
    // A data: URL built from the codes: nothing to revoke, and the codes never leave the page.
    const download = `data:text/plain;charset=utf-8,${encodeURIComponent(text)}`;
    return (
      <div className="space-y-4">
        <Notice tone="warning">
          These recovery codes are shown only now. Each signs you in once if you lose your authenticator. Keep them somewhere safe.
        </Notice>
        <ol aria-label="Recovery codes" className="grid grid-cols-2 gap-2 rounded-md bg-slate-100 p-3 font-mono text-sm dark:bg-slate-800">
          {recovery.map((c) => (
            <li key={c}>{c}</li>
          ))}
        </ol>
        <div className="flex flex-wrap gap-2">
          <Button type="button" onClick={() => void navigator.clipboard.writeText(text)}>
            Copy
          </Button>
          <Button asChild>
            <a href={download} download="opennvr-recovery-codes.txt">
              Download
            </a>
          </Button>
        </div>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={saved} onChange={(e) => setSaved(e.target.checked)} /> I have saved my recovery codes
        </label>
        <ProblemNote problem={problem} />
        <Button tone="primary" className="w-full" disabled={!saved} busy={busy} onClick={() => void finish()}>
          Continue
        </Button>
      </div>
    );
  }

  if (!started) {
    return problem ? (
      <div className="space-y-3">
        <ProblemNote problem={problem} />
        <Button onClick={() => void start()}>Try again</Button>
      </div>
    ) : (
      <Loading label="Preparing enrolment" rows={4} />
    );
  }

  return (
    <form onSubmit={(e) => void confirm(e)} className="space-y-4">
      {intro ? <p className="text-sm text-slate-600 dark:text-slate-400">{intro}</p> : null}
      <p className="text-sm">Scan this code with an authenticator app (or type the secret into it), then enter the code it shows.</p>
      <div className="flex justify-center">
        <QrCode text={started.otpauthUri} label="QR code of the authenticator secret" />
      </div>
      <p className="text-center text-sm">
        Secret: <code data-testid="totp-secret" className="select-all break-all font-mono">{started.secret}</code>
      </p>
      <Field label="Authentication code" name="totp" inputMode="numeric" autoComplete="one-time-code" required value={code} onChange={(e) => setCode(e.target.value)} />
      <ProblemNote problem={problem} />
      <Button type="submit" tone="primary" busy={busy} className="w-full">
        Confirm
      </Button>
    </form>
  );
}
