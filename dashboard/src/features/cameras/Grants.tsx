// Who may see a camera: per-user grants (live view, playback, export, manage), added and revoked here.
// Administrators see every camera and need none.

import { Role } from "@opennvr/sdk";
import type { Camera, CameraGrant, User } from "@opennvr/sdk";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import { allPages, keys } from "../../api/queries";
import { Badge, Button, Card, Loading, ProblemNote, SelectField } from "../../ui/kit";

const GRANTABLE: { permission: string; label: string }[] = [
  { permission: "camera.live", label: "Live view" },
  { permission: "recording.read", label: "Playback" },
  { permission: "recording.export", label: "Export" },
  { permission: "camera.write", label: "Manage" },
];

export function Grants({ camera }: { camera: Camera }) {
  const queries = useQueryClient();
  const grants = useQuery({
    queryKey: keys.grants(camera.id),
    queryFn: () =>
      allPages<CameraGrant>(async (pageToken) => {
        const r = await api.cameras.listCameraGrants({ cameraId: camera.id, pageSize: 500, pageToken });
        return { items: r.grants, next: r.nextPageToken };
      }),
  });
  const users = useQuery({
    queryKey: keys.users,
    queryFn: () =>
      allPages<User>(async (pageToken) => {
        const r = await api.users.listUsers({ pageSize: 500, pageToken });
        return { items: r.users, next: r.nextPageToken };
      }),
  });
  const [userId, setUserId] = useState("");
  const [perms, setPerms] = useState<string[]>(["camera.live", "recording.read"]);
  const refresh = () => void queries.invalidateQueries({ queryKey: keys.grants(camera.id) });

  const grant = useMutation({
    mutationFn: () => api.cameras.grantCameraAccess({ cameraId: camera.id, userId, permissions: ["camera.read", ...perms] }),
    onSuccess: () => {
      setUserId("");
      refresh();
    },
  });
  const revoke = useMutation({
    mutationFn: (uid: string) => api.cameras.revokeCameraAccess({ cameraId: camera.id, userId: uid }),
    onSuccess: refresh,
  });

  const name = (id: string) => {
    const u = users.data?.find((x) => x.id === id);
    return u ? u.displayName || u.username : id;
  };
  const grantable = (users.data ?? []).filter((u) => u.role !== Role.ADMIN && !u.disabled);

  return (
    <Card className="space-y-4">
      <h2 className="font-semibold">Access</h2>
      <p className="text-sm text-slate-600 dark:text-slate-400">Administrators see every camera. Other users see this camera only with a grant.</p>
      {grants.isPending ? (
        <Loading label="Loading access" rows={2} />
      ) : grants.error ? (
        <ProblemNote problem={describeError(grants.error)} />
      ) : grants.data.length === 0 ? (
        <p className="text-sm">Nobody else has access yet.</p>
      ) : (
        <ul className="divide-y divide-slate-200 dark:divide-slate-800">
          {grants.data.map((g) => (
            <li key={g.userId} className="flex flex-wrap items-center gap-2 py-2">
              <span className="font-medium">{name(g.userId)}</span>
              {g.permissions.map((p) => (
                <Badge key={p}>{GRANTABLE.find((x) => x.permission === p)?.label ?? p}</Badge>
              ))}
              <Button tone="ghost" className="ml-auto" onClick={() => revoke.mutate(g.userId)} aria-label={`Revoke access of ${name(g.userId)}`}>
                Revoke
              </Button>
            </li>
          ))}
        </ul>
      )}
      <form
        className="space-y-3 border-t border-slate-200 pt-3 dark:border-slate-800"
        onSubmit={(e) => {
          e.preventDefault();
          grant.mutate();
        }}
      >
        <SelectField label="User" value={userId} onChange={(e) => setUserId(e.target.value)} required>
          <option value="">Choose a user…</option>
          {grantable.map((u) => (
            <option key={u.id} value={u.id}>
              {u.displayName ? `${u.displayName} (${u.username})` : u.username}
            </option>
          ))}
        </SelectField>
        <fieldset className="flex flex-wrap gap-4 text-sm">
          <legend className="mb-1 font-medium">May</legend>
          {GRANTABLE.map((g) => (
            <label key={g.permission} className="flex items-center gap-1">
              <input
                type="checkbox"
                checked={perms.includes(g.permission)}
                onChange={(e) => setPerms(e.target.checked ? [...perms, g.permission] : perms.filter((p) => p !== g.permission))}
              />
              {g.label}
            </label>
          ))}
        </fieldset>
        <ProblemNote problem={grant.error ? describeError(grant.error) : revoke.error ? describeError(revoke.error) : undefined} />
        <Button type="submit" busy={grant.isPending} disabled={!userId}>
          Grant access
        </Button>
      </form>
    </Card>
  );
}
