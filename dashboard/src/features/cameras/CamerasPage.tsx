// The camera list: live status per camera, enable/disable in place, edit, and delete (step-up),
// saying what happens to the footage before it happens.

import type { Camera } from "@opennvr/sdk";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link } from "@tanstack/react-router";
import { useState } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { keys, useCameraStatuses, useCameras } from "../../api/queries";
import { useCan } from "../../api/session";
import { Dialog } from "../../ui/dialog";
import { Badge, Button, EmptyState, Loading, PageHeader, ProblemNote } from "../../ui/kit";
import { useToast } from "../../ui/toasts";
import { cameraCondition } from "../live/Tile";

export function CamerasPage() {
  const cameras = useCameras();
  const statuses = useCameraStatuses();
  const queries = useQueryClient();
  const toast = useToast();
  const canDeleteFootage = useCan("recording.delete");
  const [deleting, setDeleting] = useState<Camera | undefined>();
  const [withFootage, setWithFootage] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();

  const refresh = () => {
    void queries.invalidateQueries({ queryKey: keys.cameras });
    void queries.invalidateQueries({ queryKey: keys.statuses });
  };

  const toggle = useMutation({
    mutationFn: (c: Camera) =>
      api.cameras.updateCamera({ camera: { ...c, enabled: !c.enabled }, updateMask: { paths: ["enabled"] } }),
    onSuccess: (r) => {
      toast({ title: `${r.camera?.name ?? "Camera"} ${r.camera?.enabled ? "enabled" : "disabled"}`, tone: "success" });
      refresh();
    },
    onError: (err) => setProblem(describeError(err)),
  });

  const remove = useMutation({
    mutationFn: (c: Camera) => api.cameras.deleteCamera({ cameraId: c.id, etag: c.etag, deleteRecordings: withFootage }),
    onSuccess: (_r, c) => {
      toast({ title: `${c.name} deleted`, tone: "success" });
      setDeleting(undefined);
      refresh();
    },
    onError: (err) => setProblem(describeError(err)),
  });

  return (
    <div>
      <PageHeader title="Cameras">
        <Button asChild tone="primary">
          <Link to="/cameras/new">Add camera</Link>
        </Button>
      </PageHeader>
      <ProblemNote problem={deleting ? undefined : problem} />
      {cameras.isPending ? (
        <Loading label="Loading cameras" rows={4} />
      ) : cameras.error ? (
        <ProblemNote problem={describeError(cameras.error)} />
      ) : cameras.data.length === 0 ? (
        <EmptyState title="No cameras yet">
          <Link to="/cameras/new" className="font-medium text-teal-700 underline dark:text-teal-400">
            Add one
          </Link>{" "}
          — you can test its connection before saving.
        </EmptyState>
      ) : (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
          <table className="w-full text-left text-sm">
            <thead className="border-b border-slate-200 text-slate-500 dark:border-slate-800">
              <tr>
                <th className="p-3 font-medium">Name</th>
                <th className="p-3 font-medium">Status</th>
                <th className="hidden p-3 font-medium md:table-cell">Stream</th>
                <th className="hidden p-3 font-medium md:table-cell">Labels</th>
                <th className="p-3 font-medium">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {cameras.data.map((c) => {
                const s = statuses.data?.get(c.id);
                const condition = cameraCondition(c, s);
                const video = s?.tracks.find((t) => t.width > 0);
                return (
                  <tr key={c.id} className="border-b border-slate-100 last:border-0 dark:border-slate-800">
                    <td className="p-3 font-medium">
                      <Link to="/camera/$cameraId" params={{ cameraId: c.id }} className="hover:underline">
                        {c.name}
                      </Link>
                      {c.location ? <div className="text-xs text-slate-500">{c.location}</div> : null}
                    </td>
                    <td className="p-3">
                      {condition ? <Badge tone={condition.tone}>{condition.label}</Badge> : s?.available ? <Badge tone="ok">Online</Badge> : <Badge>Connecting</Badge>}
                      {s?.recording ? <Badge tone="ok">Recording</Badge> : null}
                    </td>
                    <td className="hidden p-3 md:table-cell">{video ? `${video.codec} ${video.width}×${video.height}` : "—"}</td>
                    <td className="hidden p-3 md:table-cell">
                      <span className="flex flex-wrap gap-1">
                        {Object.entries(c.labels).map(([k, v]) => (
                          <Badge key={k}>{`${k}: ${v}`}</Badge>
                        ))}
                      </span>
                    </td>
                    <td className="p-3">
                      <span className="flex justify-end gap-1">
                        <Button tone="ghost" onClick={() => toggle.mutate(c)} aria-label={`${c.enabled ? "Disable" : "Enable"} ${c.name}`}>
                          {c.enabled ? "Disable" : "Enable"}
                        </Button>
                        <Button asChild tone="ghost">
                          <Link to="/cameras/$cameraId/edit" params={{ cameraId: c.id }} aria-label={`Edit ${c.name}`}>
                            Edit
                          </Link>
                        </Button>
                        <Button
                          tone="ghost"
                          className="text-red-700 dark:text-red-400"
                          aria-label={`Delete ${c.name}`}
                          onClick={() => {
                            setProblem(undefined);
                            setWithFootage(false);
                            setDeleting(c);
                          }}
                        >
                          Delete
                        </Button>
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      <Dialog open={!!deleting} onOpenChange={(o) => !o && setDeleting(undefined)} title={`Delete ${deleting?.name ?? "camera"}?`}>
        <div className="space-y-3 text-sm">
          <p>Live view and recording stop at once, and its grants and AI bindings are removed.</p>
          <p>
            {withFootage
              ? "Its recordings are deleted too (refused while an evidence hold covers any of them)."
              : "Its recordings stay, listed under the deleted camera, until retention removes them."}
          </p>
          {canDeleteFootage ? (
            <label className="flex items-center gap-2">
              <input type="checkbox" checked={withFootage} onChange={(e) => setWithFootage(e.target.checked)} /> Also delete its recordings
            </label>
          ) : null}
          <ProblemNote problem={problem} />
          <div className="flex justify-end gap-2">
            <Button onClick={() => setDeleting(undefined)}>Cancel</Button>
            <Button tone="danger" busy={remove.isPending} onClick={() => deleting && remove.mutate(deleting)}>
              Delete camera
            </Button>
          </div>
        </div>
      </Dialog>
    </div>
  );
}
