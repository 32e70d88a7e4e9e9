// The step-up retry, in one place for every screen: a call refused with
// ERROR_REASON_STEP_UP_REQUIRED asks the user for a second factor (through whatever prompt the app
// registers) and, once the factor is accepted, runs again — once. Calls that need it at the same time
// share one prompt.

import { isStepUpRequired } from "@opennvr/sdk";

/** Asks the user to present a second factor; resolves true once the server accepted one. */
export type StepUpPrompt = () => Promise<boolean>;

/** Raised when the user dismissed the step-up prompt: the action was not carried out. */
export class StepUpCancelled extends Error {
  constructor() {
    super("The action needs a second factor; it was not carried out.");
    this.name = "StepUpCancelled";
  }
}

export class StepUpCoordinator {
  #prompt: StepUpPrompt | undefined;
  #pending: Promise<boolean> | undefined;

  /** Registers the prompt (the app's dialog); returns a function that unregisters it. */
  setPrompt(prompt: StepUpPrompt): () => void {
    this.#prompt = prompt;
    return () => {
      if (this.#prompt === prompt) this.#prompt = undefined;
    };
  }

  /** Runs `call`; when it needs a step-up, prompts (one prompt for concurrent callers) and runs it again once. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (!isStepUpRequired(err) || !this.#prompt) throw err;
      const accepted = await this.#ask(this.#prompt);
      if (!accepted) throw new StepUpCancelled();
      return call();
    }
  }

  #ask(prompt: StepUpPrompt): Promise<boolean> {
    this.#pending ??= prompt().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }
}
