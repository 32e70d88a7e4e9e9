// What a screen shows instead of going blank when it fails to render: the error in words, and ways
// out (try again, back to the live view).

import type { ErrorComponentProps } from "@tanstack/react-router";
import { describeError } from "../api/errors";
import { Button, ProblemNote } from "../ui/kit";

export function RouteError({ error, reset }: ErrorComponentProps) {
  return (
    <main className="mx-auto max-w-lg space-y-4 p-6">
      <h1 className="text-xl font-semibold">This screen failed</h1>
      <ProblemNote problem={describeError(error)} />
      <div className="flex gap-2">
        <Button tone="primary" onClick={reset}>
          Try again
        </Button>
        <Button onClick={() => window.location.assign("/ui/")}>Back to live view</Button>
      </div>
    </main>
  );
}

export function NotFound() {
  return (
    <main className="mx-auto max-w-lg space-y-4 p-6">
      <h1 className="text-xl font-semibold">No such page</h1>
      <p className="text-sm text-slate-600 dark:text-slate-400">The link may be old or mistyped.</p>
      <Button onClick={() => window.location.assign("/ui/")}>Back to live view</Button>
    </main>
  );
}
