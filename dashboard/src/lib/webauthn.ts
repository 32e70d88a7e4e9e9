// Between the server's WebAuthn JSON (webauthn-rs: binary fields as unpadded base64url) and the
// browser's navigator.credentials, which takes and gives ArrayBuffers.

import { fromBase64Url, toBase64Url } from "./base64url";

interface JsonDescriptor {
  id: string;
  type: PublicKeyCredentialType;
  transports?: AuthenticatorTransport[];
}

function descriptors(list: JsonDescriptor[] | undefined): PublicKeyCredentialDescriptor[] | undefined {
  return list?.map((d) => ({ ...d, id: fromBase64Url(d.id) }));
}

interface JsonRequestOptions {
  publicKey: Omit<PublicKeyCredentialRequestOptions, "challenge" | "allowCredentials"> & {
    challenge: string;
    allowCredentials?: JsonDescriptor[];
  };
  mediation?: CredentialMediationRequirement;
}

interface JsonCreationOptions {
  publicKey: Omit<PublicKeyCredentialCreationOptions, "challenge" | "user" | "excludeCredentials"> & {
    challenge: string;
    user: { id: string; name: string; displayName: string };
    excludeCredentials?: JsonDescriptor[];
  };
}

/** Whether this browser can use passkeys at all. */
export function passkeysSupported(): boolean {
  return typeof window.PublicKeyCredential === "function" && !!navigator.credentials;
}

/** Runs navigator.credentials.get() with the server's request options; returns the assertion as JSON. */
export async function getAssertion(optionsJson: string, signal?: AbortSignal): Promise<string> {
  const o = JSON.parse(optionsJson) as JsonRequestOptions;
  const publicKey: PublicKeyCredentialRequestOptions = {
    ...o.publicKey,
    challenge: fromBase64Url(o.publicKey.challenge),
    allowCredentials: descriptors(o.publicKey.allowCredentials),
  };
  const cred = (await navigator.credentials.get({ publicKey, signal })) as PublicKeyCredential | null;
  if (!cred) throw new Error("No passkey was chosen.");
  const r = cred.response as AuthenticatorAssertionResponse;
  return JSON.stringify({
    id: cred.id,
    rawId: toBase64Url(cred.rawId),
    type: cred.type,
    response: {
      authenticatorData: toBase64Url(r.authenticatorData),
      clientDataJSON: toBase64Url(r.clientDataJSON),
      signature: toBase64Url(r.signature),
      userHandle: toBase64Url(r.userHandle),
    },
    extensions: {},
  });
}

/** Runs navigator.credentials.create() with the server's creation options; returns the credential as JSON. */
export async function createCredential(optionsJson: string): Promise<string> {
  const o = JSON.parse(optionsJson) as JsonCreationOptions;
  const publicKey: PublicKeyCredentialCreationOptions = {
    ...o.publicKey,
    challenge: fromBase64Url(o.publicKey.challenge),
    user: { ...o.publicKey.user, id: fromBase64Url(o.publicKey.user.id) },
    excludeCredentials: descriptors(o.publicKey.excludeCredentials),
  };
  const cred = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (!cred) throw new Error("No passkey was created.");
  const r = cred.response as AuthenticatorAttestationResponse;
  return JSON.stringify({
    id: cred.id,
    rawId: toBase64Url(cred.rawId),
    type: cred.type,
    response: {
      attestationObject: toBase64Url(r.attestationObject),
      clientDataJSON: toBase64Url(r.clientDataJSON),
      transports: typeof r.getTransports === "function" ? r.getTransports() : undefined,
    },
    extensions: {},
  });
}
