// The one step-up dialog: registered with the coordinator, it opens whenever a call needs a recent
// second factor, asks for one (code, recovery code or passkey) and reports whether it was accepted.

import { create, MfaChallengeSchema, SecondFactorMethod } from "@opennvr/sdk";
import type { MfaChallenge, SecondFactor } from "@opennvr/sdk";
import { useEffect, useRef, useState } from "react";
import { api, stepUp } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { Dialog } from "../../ui/dialog";
import { SecondFactorForm } from "./SignIn";

export function StepUpDialog() {
  const [challenge, setChallenge] = useState<MfaChallenge | undefined>();
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState(false);
  const settle = useRef<((ok: boolean) => void) | undefined>(undefined);
  // The ticket of the latest passkey challenge (each challenge works once).
  const ticket = useRef("");

  useEffect(() => {
    const unregister = stepUp.setPrompt(async () => {
      let c: MfaChallenge | undefined;
      try {
        c = (await api.auth.startStepUp({})).challenge;
      } catch {
        c = undefined;
      }
      ticket.current = c?.ticket ?? "";
      setProblem(undefined);
      setChallenge(c ?? create(MfaChallengeSchema, { methods: [SecondFactorMethod.TOTP, SecondFactorMethod.RECOVERY_CODE] }));
      return new Promise<boolean>((resolve) => {
        settle.current = resolve;
      });
    });
    return () => {
      unregister();
      // Unmounted while asking (signed out): the waiting call is not carried out.
      settle.current?.(false);
      settle.current = undefined;
    };
  }, []);

  const close = (ok: boolean) => {
    settle.current?.(ok);
    settle.current = undefined;
    setChallenge(undefined);
  };

  const present = async (factor: SecondFactor["method"]) => {
    if (!challenge) return;
    setBusy(true);
    setProblem(undefined);
    try {
      await api.auth.stepUp({ ticket: factor.case === "passkeyAssertionJson" ? ticket.current : "", factor: { method: factor } });
      close(true);
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open={!!challenge}
      onOpenChange={(open) => !open && close(false)}
      title="Confirm it is you"
      description="This action needs a second factor presented in the last few minutes."
    >
      {challenge ? (
        <SecondFactorForm
          challenge={challenge}
          busy={busy}
          problem={problem}
          onFactor={present}
          onPasskeyOptions={async () => {
            const fresh = (await api.auth.startStepUp({})).challenge;
            ticket.current = fresh?.ticket ?? "";
            return fresh?.passkeyRequestOptionsJson ?? "";
          }}
          onCancel={() => close(false)}
          submitLabel="Confirm"
        />
      ) : null}
    </Dialog>
  );
}
