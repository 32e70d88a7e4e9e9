// A thin, hand-written client over the generated OpenNVR services: one grpc-web transport, one
// typed client per service, and the tokens of the signed-in session (sent as `authorization: Bearer`).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { getOption } from "@bufbuild/protobuf";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { createClient as createServiceClient } from "@connectrpc/connect";
import type { CallOptions, Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { ApiKeyService } from "./gen/opennvr/v1/api_key_service_pb.js";
import { AuditService } from "./gen/opennvr/v1/audit_service_pb.js";
import { AuthService } from "./gen/opennvr/v1/auth_service_pb.js";
import type { LoginResponse, SecondFactor, Tokens } from "./gen/opennvr/v1/auth_service_pb.js";
import { CameraService } from "./gen/opennvr/v1/camera_service_pb.js";
import { EventService } from "./gen/opennvr/v1/event_service_pb.js";
import { IdsService } from "./gen/opennvr/v1/ids_service_pb.js";
import { InferenceService } from "./gen/opennvr/v1/inference_service_pb.js";
import { MasterKeyService } from "./gen/opennvr/v1/master_key_service_pb.js";
import { policy } from "./gen/opennvr/v1/options_pb.js";
import { RecordingService } from "./gen/opennvr/v1/recording_service_pb.js";
import { UserService } from "./gen/opennvr/v1/user_service_pb.js";

/** Every service of the OpenNVR API. */
const SERVICES: readonly DescService[] = [
  AuthService,
  UserService,
  ApiKeyService,
  MasterKeyService,
  CameraService,
  RecordingService,
  AuditService,
  EventService,
  InferenceService,
  IdsService,
];

/** Whether an RPC takes no credential: its `(opennvr.v1.policy)` option says `public: true`. */
export function isPublicMethod(method: DescMethod): boolean {
  const access = getOption(method, policy).access;
  return access.case === "public" && access.value;
}

/**
 * The RPCs that take no credential, as "/opennvr.v1.AuthService/Login", read from the policy option of
 * every RPC in the generated descriptors.
 */
export const PUBLIC_METHODS: ReadonlySet<string> = new Set(
  SERVICES.flatMap((service) =>
    service.methods.filter(isPublicMethod).map((method) => `/${service.typeName}/${method.name}`),
  ),
);

export interface OpenNvrClientOptions {
  /**
   * A credential to start with: an access token or an API key secret. Replaced by the tokens of
   * bootstrap(), login(), finishMfa(), finishPasskeyLogin() and refresh().
   */
  credential?: string;
  /** Interceptors to run after the one that adds the bearer credential. */
  interceptors?: Interceptor[];
  /** fetch implementation (defaults to globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Timeout applied to every call unless the call sets its own (ms). */
  defaultTimeoutMs?: number;
  /**
   * Refresh the access token automatically when it expires within this many milliseconds and a
   * refresh token is held (default 30000). 0 turns automatic refresh off.
   */
  refreshMarginMs?: number;
  /** Called whenever new tokens arrive, or with undefined after logout(), e.g. to persist them. */
  onTokens?: (tokens: Tokens | undefined) => void;
}

/** The grpc-web transport for an OpenNVR server at `baseUrl` (e.g. "http://127.0.0.1:7450"). */
export function createTransport(
  baseUrl: string,
  options: Pick<OpenNvrClientOptions, "interceptors" | "fetch" | "defaultTimeoutMs"> = {},
): Transport {
  return createGrpcWebTransport({
    baseUrl,
    interceptors: options.interceptors,
    fetch: options.fetch,
    defaultTimeoutMs: options.defaultTimeoutMs,
  });
}

/** Holds the session's tokens and exposes one typed client per OpenNVR service. */
export class OpenNvrClient {
  readonly transport: Transport;
  readonly auth: Client<typeof AuthService>;
  readonly users: Client<typeof UserService>;
  readonly apiKeys: Client<typeof ApiKeyService>;
  readonly masterKey: Client<typeof MasterKeyService>;
  readonly cameras: Client<typeof CameraService>;
  readonly recordings: Client<typeof RecordingService>;
  readonly audit: Client<typeof AuditService>;
  readonly events: Client<typeof EventService>;
  readonly inference: Client<typeof InferenceService>;
  readonly ids: Client<typeof IdsService>;

  #credential: string | undefined;
  #tokens: Tokens | undefined;
  #refreshing: Promise<Tokens> | undefined;
  readonly #refreshMarginMs: number;
  readonly #onTokens: ((tokens: Tokens | undefined) => void) | undefined;

  constructor(baseUrl: string, options: OpenNvrClientOptions = {}) {
    this.#credential = options.credential;
    this.#refreshMarginMs = options.refreshMarginMs ?? 30_000;
    this.#onTokens = options.onTokens;
    this.transport = createTransport(baseUrl, {
      ...options,
      interceptors: [this.#bearer, ...(options.interceptors ?? [])],
    });
    this.auth = this.service(AuthService);
    this.users = this.service(UserService);
    this.apiKeys = this.service(ApiKeyService);
    this.masterKey = this.service(MasterKeyService);
    this.cameras = this.service(CameraService);
    this.recordings = this.service(RecordingService);
    this.audit = this.service(AuditService);
    this.events = this.service(EventService);
    this.inference = this.service(InferenceService);
    this.ids = this.service(IdsService);
  }

  /** A typed client for any service descriptor, sharing this client's transport and credential. */
  service<T extends DescService>(service: T): Client<T> {
    return createServiceClient(service, this.transport);
  }

  /** The credential sent with calls: the current access token or API key secret. */
  get credential(): string | undefined {
    return this.#credential;
  }

  /** The tokens of the current session, if signed in with a password. */
  get tokens(): Tokens | undefined {
    return this.#tokens;
  }

  /** Uses an API key secret (or an access token obtained elsewhere); forgets held tokens. */
  setCredential(credential: string | undefined): void {
    this.#tokens = undefined;
    this.#credential = credential;
  }

  /** Creates the first administrator with the server's one-time setup token, and signs it in. */
  async bootstrap(
    setupToken: string,
    username: string,
    password: string,
    displayName = "",
    callOptions?: CallOptions,
  ): Promise<Tokens> {
    const res = await this.auth.bootstrap({ setupToken, username, password, displayName }, callOptions);
    return this.#keep(res.tokens);
  }

  /**
   * Signs in with a password. When the result is "tokens" they are kept and sent with later calls;
   * when it is "mfaRequired", finish with finishMfa() and the challenge's ticket.
   */
  async login(username: string, password: string, callOptions?: CallOptions): Promise<LoginResponse["result"]> {
    const res = await this.auth.login({ username, password }, callOptions);
    if (res.result.case === "tokens") {
      this.#keep(res.result.value);
    }
    return res.result;
  }

  /** Finishes a login that asked for a second factor (TOTP code, recovery code or passkey assertion). */
  async finishMfa(ticket: string, factor: SecondFactor["method"], callOptions?: CallOptions): Promise<Tokens> {
    const res = await this.auth.finishMfa({ ticket, factor: { method: factor } }, callOptions);
    return this.#keep(res.tokens);
  }

  /** Finishes a passwordless login with the assertion of navigator.credentials.get() (as JSON). */
  async finishPasskeyLogin(ticket: string, passkeyAssertionJson: string, callOptions?: CallOptions): Promise<Tokens> {
    const res = await this.auth.finishPasskeyLogin({ ticket, passkeyAssertionJson }, callOptions);
    return this.#keep(res.tokens);
  }

  /** Presents a TOTP code on the current session, so that step-up RPCs pass for a few minutes. */
  async stepUpWithTotp(code: string, callOptions?: CallOptions): Promise<void> {
    await this.auth.stepUp({ ticket: "", factor: { method: { case: "totpCode", value: code } } }, callOptions);
  }

  /** Exchanges the held refresh token for new tokens (concurrent callers share one exchange). */
  refresh(callOptions?: CallOptions): Promise<Tokens> {
    const refreshToken = this.#tokens?.refreshToken;
    if (!refreshToken) {
      return Promise.reject(new Error("OpenNvrClient.refresh: no refresh token held; log in first"));
    }
    if (!this.#refreshing) {
      this.#refreshing = this.auth
        .refresh({ refreshToken }, callOptions)
        .then((res) => this.#keep(res.tokens))
        .finally(() => {
          this.#refreshing = undefined;
        });
    }
    return this.#refreshing;
  }

  /**
   * Resumes a session from a refresh token kept elsewhere (e.g. a page's session storage): exchanges it
   * for new tokens and keeps them.
   */
  async resumeSession(refreshToken: string, callOptions?: CallOptions): Promise<Tokens> {
    const res = await this.auth.refresh({ refreshToken }, callOptions);
    return this.#keep(res.tokens);
  }

  /** Ends the session on the server and forgets the tokens. */
  async logout(callOptions?: CallOptions): Promise<void> {
    try {
      if (this.#credential) {
        await this.auth.logout({}, callOptions);
      }
    } finally {
      this.#tokens = undefined;
      this.#credential = undefined;
      this.#onTokens?.(undefined);
    }
  }

  #keep(tokens: Tokens | undefined): Tokens {
    if (!tokens || !tokens.accessToken) {
      throw new Error("OpenNvrClient: the server answered without tokens");
    }
    this.#tokens = tokens;
    this.#credential = tokens.accessToken;
    this.#onTokens?.(tokens);
    return tokens;
  }

  #expiresSoon(): boolean {
    const expire = this.#tokens?.accessTokenExpireTime;
    if (this.#refreshMarginMs <= 0 || !expire || !this.#tokens?.refreshToken) {
      return false;
    }
    return timestampDate(expire).getTime() - Date.now() < this.#refreshMarginMs;
  }

  #bearer: Interceptor = (next) => async (req) => {
    const isPublic = PUBLIC_METHODS.has(`/${req.service.typeName}/${req.method.name}`);
    if (!isPublic && !req.header.has("authorization")) {
      if (this.#expiresSoon()) {
        await this.refresh();
      }
      if (this.#credential) {
        req.header.set("authorization", `Bearer ${this.#credential}`);
      }
    }
    return next(req);
  };
}

/** A client for the OpenNVR server at `baseUrl` (grpc-web over HTTP/1.1 or HTTP/2). */
export function createClient(baseUrl: string, options?: OpenNvrClientOptions): OpenNvrClient {
  return new OpenNvrClient(baseUrl, options);
}
