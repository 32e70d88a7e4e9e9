// The details an OpenNVR error carries (google.rpc ErrorInfo, BadRequest, RetryInfo, sent by the server
// in grpc-status-details-bin), decoded from a ConnectError without generated google.rpc code.

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

/** Domain of the ErrorInfo details the server sends. */
export const ERROR_DOMAIN = "opennvr.dev";

/** One invalid field of a request, as the server named it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** What a failed call says beyond its code and message. */
export interface ErrorFacts {
  code: Code;
  /** The server's message, without the code prefix ConnectError adds. */
  message: string;
  /** `ErrorReason` name, e.g. "ERROR_REASON_STEP_UP_REQUIRED", when the server gave one. */
  reason: string | undefined;
  fieldViolations: FieldViolation[];
  /** How long to wait before retrying (throttling), in milliseconds. */
  retryAfterMs: number | undefined;
}

const ERROR_INFO = "google.rpc.ErrorInfo";
const BAD_REQUEST = "google.rpc.BadRequest";
const RETRY_INFO = "google.rpc.RetryInfo";

/** Reads the fields of one message as (field number, reader positioned on its value) pairs. */
function fields(bytes: Uint8Array, visit: (no: number, wire: WireType, r: BinaryReader) => boolean): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wire] = r.tag();
    if (!visit(no, wire, r)) {
      r.skip(wire, no);
    }
  }
}

function errorInfo(bytes: Uint8Array): { reason: string; domain: string } {
  const out = { reason: "", domain: "" };
  fields(bytes, (no, wire, r) => {
    if (wire !== WireType.LengthDelimited) return false;
    if (no === 1) out.reason = r.string();
    else if (no === 2) out.domain = r.string();
    else return false;
    return true;
  });
  return out;
}

function badRequest(bytes: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  fields(bytes, (no, wire, r) => {
    if (no !== 1 || wire !== WireType.LengthDelimited) return false;
    const v: FieldViolation = { field: "", description: "" };
    fields(r.bytes(), (fno, fwire, fr) => {
      if (fwire !== WireType.LengthDelimited) return false;
      if (fno === 1) v.field = fr.string();
      else if (fno === 2) v.description = fr.string();
      else return false;
      return true;
    });
    out.push(v);
    return true;
  });
  return out;
}

function retryDelayMs(bytes: Uint8Array): number | undefined {
  let ms: number | undefined;
  fields(bytes, (no, wire, r) => {
    if (no !== 1 || wire !== WireType.LengthDelimited) return false;
    let seconds = 0;
    let nanos = 0;
    fields(r.bytes(), (dno, dwire, dr) => {
      if (dwire !== WireType.Varint) return false;
      if (dno === 1) seconds = Number(dr.int64());
      else if (dno === 2) nanos = dr.int32();
      else return false;
      return true;
    });
    ms = seconds * 1000 + Math.round(nanos / 1e6);
    return true;
  });
  return ms;
}

/** The code, message, reason, field violations and retry delay of any error a call threw. */
export function errorFacts(err: unknown): ErrorFacts {
  const e = ConnectError.from(err);
  const facts: ErrorFacts = {
    code: e.code,
    message: e.rawMessage,
    reason: undefined,
    fieldViolations: [],
    retryAfterMs: undefined,
  };
  for (const d of e.details) {
    if (!("type" in d) || !(d.value instanceof Uint8Array)) continue;
    try {
      if (d.type === ERROR_INFO) {
        const info = errorInfo(d.value);
        if (info.domain === ERROR_DOMAIN && info.reason) facts.reason = info.reason;
      } else if (d.type === BAD_REQUEST) {
        facts.fieldViolations.push(...badRequest(d.value));
      } else if (d.type === RETRY_INFO) {
        facts.retryAfterMs = retryDelayMs(d.value);
      }
    } catch {
      // A detail that does not decode is ignored: the code and message still stand.
    }
  }
  return facts;
}

/** Whether a call was refused for want of a recent second factor (retry after StepUp). */
export function isStepUpRequired(err: unknown): boolean {
  const f = errorFacts(err);
  return f.code === Code.PermissionDenied && f.reason === "ERROR_REASON_STEP_UP_REQUIRED";
}
