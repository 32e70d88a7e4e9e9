// Turning any failure into words for the operator: the server's own message and the field it names.

import { Code, errorFacts } from "@opennvr/sdk";
import type { ErrorFacts } from "@opennvr/sdk";
import { StepUpCancelled } from "../lib/stepup";

export interface Problem {
  title: string;
  message: string;
  /** Field names the server said were invalid, with its words for each. */
  fields: Record<string, string>;
  facts: ErrorFacts | undefined;
}

const TITLES: Partial<Record<Code, string>> = {
  [Code.InvalidArgument]: "Check the form",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.PermissionDenied]: "Not allowed",
  [Code.Unauthenticated]: "Sign-in needed",
  [Code.ResourceExhausted]: "Too many attempts",
  [Code.FailedPrecondition]: "Not possible right now",
  [Code.Aborted]: "Changed meanwhile",
  [Code.Unavailable]: "Server unavailable",
  [Code.DeadlineExceeded]: "Timed out",
};

export function describeError(err: unknown): Problem {
  if (err instanceof StepUpCancelled) {
    return { title: "Not carried out", message: err.message, fields: {}, facts: undefined };
  }
  const facts = errorFacts(err);
  const fields: Record<string, string> = {};
  for (const v of facts.fieldViolations) fields[v.field] = v.description;
  let message = facts.message || "Something went wrong.";
  if (facts.code === Code.Unavailable && /fetch|network|Failed to fetch/i.test(message)) {
    message = "The OpenNVR server cannot be reached. Check the connection; the page retries by itself.";
  }
  if (facts.retryAfterMs !== undefined && facts.code === Code.ResourceExhausted) {
    message = `${message} (try again in ${Math.ceil(facts.retryAfterMs / 1000)} s)`;
  }
  return { title: TITLES[facts.code] ?? "Error", message, fields, facts };
}
