// Server state the screens share, through TanStack Query: one key per listing, so that a change on
// one screen refreshes the others.

import type { Camera, CameraStatus } from "@opennvr/sdk";
import { useQuery } from "@tanstack/react-query";
import { api } from "./client";

export const keys = {
  cameras: ["cameras"] as const,
  camera: (id: string) => ["cameras", id] as const,
  statuses: ["camera-statuses"] as const,
  mediaPlane: ["media-plane"] as const,
  storage: ["storage"] as const,
  adapters: ["adapter-statuses"] as const,
  sessions: ["sessions"] as const,
  users: ["users"] as const,
  grants: (cameraId: string) => ["grants", cameraId] as const,
};

/** Reads every page of a listing. */
export async function allPages<T>(page: (token: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const out: T[] = [];
  let token = "";
  for (let i = 0; i < 1000; i++) {
    const p = await page(token);
    out.push(...p.items);
    if (!p.next) break;
    token = p.next;
  }
  return out;
}

export function useCameras() {
  return useQuery({
    queryKey: keys.cameras,
    queryFn: () =>
      allPages<Camera>(async (pageToken) => {
        const r = await api.cameras.listCameras({ pageSize: 500, pageToken });
        return { items: r.cameras, next: r.nextPageToken };
      }).then((cams) => cams.sort((a, b) => a.name.localeCompare(b.name))),
  });
}

/** Live status of every visible camera, refreshed every few seconds. */
export function useCameraStatuses() {
  return useQuery({
    queryKey: keys.statuses,
    queryFn: async () => {
      const all = await allPages<CameraStatus>(async (pageToken) => {
        const r = await api.cameras.listCameraStatuses({ pageSize: 500, pageToken });
        return { items: r.statuses, next: r.nextPageToken };
      });
      return new Map(all.map((s) => [s.cameraId, s]));
    },
    refetchInterval: 5_000,
  });
}
