import { Code, ConnectError } from "@opennvr/sdk";
import { describe, expect, it, vi } from "vitest";
import { StepUpCancelled, StepUpCoordinator } from "./stepup";

/** An error as the server sends it: PERMISSION_DENIED with an ErrorInfo detail naming the reason. */
function refused(reason: string): ConnectError {
  // google.rpc.ErrorInfo { reason = 1, domain = 2 }, encoded by hand.
  const text = new TextEncoder();
  const field = (no: number, s: string) => {
    const b = text.encode(s);
    return [(no << 3) | 2, b.length, ...b];
  };
  const value = new Uint8Array([...field(1, reason), ...field(2, "opennvr.dev")]);
  const err = new ConnectError("a recent second factor is required", Code.PermissionDenied);
  err.details.push({ type: "google.rpc.ErrorInfo", value });
  return err;
}

function failingOnce<T>(err: Error, then: T) {
  let calls = 0;
  const fn = vi.fn(() => (calls++ === 0 ? Promise.reject(err) : Promise.resolve(then)));
  return fn;
}

describe("step-up retry", () => {
  it("prompts once and retries the call once when the server asks for a step-up", async () => {
    const c = new StepUpCoordinator();
    const prompt = vi.fn(() => Promise.resolve(true));
    c.setPrompt(prompt);
    const call = failingOnce(refused("ERROR_REASON_STEP_UP_REQUIRED"), "deleted");
    await expect(c.run(call)).resolves.toBe("deleted");
    expect(prompt).toHaveBeenCalledTimes(1);
    expect(call).toHaveBeenCalledTimes(2);
  });

  it("does not retry more than once when the retry is refused again", async () => {
    const c = new StepUpCoordinator();
    c.setPrompt(() => Promise.resolve(true));
    const err = refused("ERROR_REASON_STEP_UP_REQUIRED");
    const call = vi.fn(() => Promise.reject(err));
    await expect(c.run(call)).rejects.toBe(err);
    expect(call).toHaveBeenCalledTimes(2);
  });

  it("leaves other permission errors alone", async () => {
    const c = new StepUpCoordinator();
    const prompt = vi.fn(() => Promise.resolve(true));
    c.setPrompt(prompt);
    const err = refused("ERROR_REASON_UNSPECIFIED");
    await expect(c.run(() => Promise.reject(err))).rejects.toBe(err);
    expect(prompt).not.toHaveBeenCalled();
  });

  it("reports a dismissed prompt as cancelled without retrying", async () => {
    const c = new StepUpCoordinator();
    c.setPrompt(() => Promise.resolve(false));
    const call = failingOnce(refused("ERROR_REASON_STEP_UP_REQUIRED"), "deleted");
    await expect(c.run(call)).rejects.toBeInstanceOf(StepUpCancelled);
    expect(call).toHaveBeenCalledTimes(1);
  });

  it("shares one prompt among calls that need a step-up together", async () => {
    const c = new StepUpCoordinator();
    let answer: (ok: boolean) => void = () => undefined;
    const prompt = vi.fn(() => new Promise<boolean>((r) => (answer = r)));
    c.setPrompt(prompt);
    const a = c.run(failingOnce(refused("ERROR_REASON_STEP_UP_REQUIRED"), "a"));
    const b = c.run(failingOnce(refused("ERROR_REASON_STEP_UP_REQUIRED"), "b"));
    await vi.waitFor(() => expect(prompt).toHaveBeenCalledTimes(1));
    answer(true);
    await expect(Promise.all([a, b])).resolves.toEqual(["a", "b"]);
    expect(prompt).toHaveBeenCalledTimes(1);
  });
});
