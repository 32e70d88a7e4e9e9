// First run: the one-time setup token (printed by the server, in <data dir>/setup-token) creates
// the first administrator, who then enrols a second factor (administrators must have one).

import { useState } from "react";
import type { SubmitEvent } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { useSession } from "../../api/session";
import { Button, Field, ProblemNote } from "../../ui/kit";
import { AuthFrame } from "./AuthFrame";

export function Setup() {
  const session = useSession();
  const [form, setForm] = useState({ setupToken: "", username: "", displayName: "", password: "", confirm: "" });
  const [problem, setProblem] = useState<Problem | undefined>();
  const [busy, setBusy] = useState(false);
  const mismatch = form.confirm !== "" && form.confirm !== form.password;

  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });

  const submit = async (e: SubmitEvent) => {
    e.preventDefault();
    if (mismatch) return;
    setBusy(true);
    setProblem(undefined);
    try {
      const tokens = await api.bootstrap(form.setupToken.trim(), form.username, form.password, form.displayName);
      await session.signedIn(tokens);
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const f = problem?.fields ?? {};
  return (
    <AuthFrame title="Set up OpenNVR">
      <p className="mb-4 text-sm text-slate-600 dark:text-slate-400">
        Create the first administrator. The setup token is in the file <code>setup-token</code> in the server's data directory
        (it works once).
      </p>
      <form onSubmit={(e) => void submit(e)} className="space-y-4">
        <Field label="Setup token" name="setupToken" autoComplete="off" required value={form.setupToken} onChange={set("setupToken")} error={f.setup_token} />
        <Field label="Username" name="username" autoComplete="username" required value={form.username} onChange={set("username")} error={f.username} />
        <Field label="Display name" name="displayName" autoComplete="name" value={form.displayName} onChange={set("displayName")} error={f.display_name} />
        <Field
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          minLength={12}
          value={form.password}
          onChange={set("password")}
          error={f.password}
          hint="At least 12 characters."
        />
        <Field
          label="Confirm password"
          name="confirm"
          type="password"
          autoComplete="new-password"
          required
          value={form.confirm}
          onChange={set("confirm")}
          error={mismatch ? "The passwords differ." : undefined}
        />
        <ProblemNote problem={problem} />
        <Button type="submit" tone="primary" busy={busy} className="w-full">
          Create administrator
        </Button>
      </form>
    </AuthFrame>
  );
}
