// An event in words: a title naming the camera, a detail, and how loud it is.

import { EventSeverity, EventType } from "@opennvr/sdk";
import type { Event } from "@opennvr/sdk";

export interface EventWords {
  title: string;
  detail?: string;
  tone: "info" | "warning" | "critical" | "success";
}

export const EVENT_LABELS: Partial<Record<EventType, string>> = {
  [EventType.CAMERA_ONLINE]: "Camera online",
  [EventType.CAMERA_OFFLINE]: "Camera offline",
  [EventType.CAMERA_CREATED]: "Camera added",
  [EventType.CAMERA_UPDATED]: "Camera changed",
  [EventType.CAMERA_DELETED]: "Camera deleted",
  [EventType.RECORDING_STARTED]: "Recording started",
  [EventType.RECORDING_STOPPED]: "Recording stopped",
  [EventType.SEGMENT_COMPLETE]: "Segment recorded",
  [EventType.RECORDINGS_DELETED]: "Recordings deleted",
  [EventType.DETECTION]: "Detection",
  [EventType.IDS_ALERT]: "Intrusion alert",
  [EventType.STORAGE_LOW]: "Storage low",
  [EventType.STORAGE_RECOVERED]: "Storage recovered",
  [EventType.ADAPTER_UNHEALTHY]: "AI adapter unhealthy",
  [EventType.ADAPTER_HEALTHY]: "AI adapter healthy",
  [EventType.MEDIA_SERVER_RESTARTED]: "Media server restarted",
  [EventType.MEDIA_SERVER_UNAVAILABLE]: "Media server unavailable",
  [EventType.HOLD_CREATED]: "Hold created",
  [EventType.HOLD_RELEASED]: "Hold released",
  [EventType.EXPORT_FINISHED]: "Export finished",
};

export function describeEvent(e: Event, cameraNames: ReadonlyMap<string, string>): EventWords {
  const label = EVENT_LABELS[e.type] ?? "Event";
  const camera = e.cameraId ? (cameraNames.get(e.cameraId) ?? "a camera") : undefined;
  const title = camera ? `${label}: ${camera}` : label;
  let detail: string | undefined;
  switch (e.payload.case) {
    case "cameraState":
      detail = e.payload.value.error || undefined;
      break;
    case "recordingState":
      detail = e.payload.value.reason || undefined;
      break;
    case "detections":
      detail = e.payload.value.detections.map((d) => `${d.label} ${Math.round(d.confidence * 100)}%`).join(", ") || undefined;
      break;
    case "idsAlert":
      detail = e.payload.value.signature || undefined;
      break;
    case "adapterHealth":
      detail = [e.payload.value.adapterName, e.payload.value.lastError].filter(Boolean).join(": ") || undefined;
      break;
    case "mediaServer":
      detail = e.payload.value.error || undefined;
      break;
    default:
      break;
  }
  const tone =
    e.severity === EventSeverity.CRITICAL ? "critical" : e.severity === EventSeverity.WARNING ? "warning" : e.type === EventType.CAMERA_ONLINE ? "success" : "info";
  return { title, detail, tone };
}
