// Adding or editing a camera: the RTSP source with a connection test (codecs and resolution, or the
// precise failure) before saving, a write-only password, labels, recording settings and, for an
// existing camera, who may see it.

import { ConnectionTestResult, RecordingMode, RtspTransport, durationFromMs, durationMs } from "@opennvr/sdk";
import type { Camera, TestCameraConnectionResponse } from "@opennvr/sdk";
import { useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate } from "@tanstack/react-router";
import { useState } from "react";
import type { SubmitEvent } from "react";
import { api } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Problem } from "../../api/errors";
import { keys, useCameras } from "../../api/queries";
import { useCan } from "../../api/session";
import { Button, Card, Field, Loading, Notice, PageHeader, ProblemNote, SelectField } from "../../ui/kit";
import { useToast } from "../../ui/toasts";
import { Grants } from "./Grants";

interface FormState {
  name: string;
  location: string;
  description: string;
  sourceUrl: string;
  username: string;
  password: string;
  transport: RtspTransport;
  enabled: boolean;
  recordingEnabled: boolean;
  recordingMode: RecordingMode;
  segmentSeconds: string;
  labels: string;
}

const EMPTY: FormState = {
  name: "",
  location: "",
  description: "",
  sourceUrl: "",
  username: "",
  password: "",
  transport: RtspTransport.AUTO,
  enabled: true,
  recordingEnabled: true,
  recordingMode: RecordingMode.CONTINUOUS,
  segmentSeconds: "",
  labels: "",
};

const transportOf = (v: string): RtspTransport =>
  [RtspTransport.TCP, RtspTransport.UDP].find((t) => String(t) === v) ?? RtspTransport.AUTO;
const modeOf = (v: string): RecordingMode => (String(RecordingMode.EVENTS) === v ? RecordingMode.EVENTS : RecordingMode.CONTINUOUS);

function fromCamera(c: Camera): FormState {
  return {
    name: c.name,
    location: c.location,
    description: c.description,
    sourceUrl: c.sourceUrl,
    username: c.username,
    password: "",
    transport: c.transport || RtspTransport.AUTO,
    enabled: c.enabled,
    recordingEnabled: c.recordingEnabled,
    recordingMode: c.recordingMode || RecordingMode.CONTINUOUS,
    segmentSeconds: c.segmentDuration ? String(durationMs(c.segmentDuration) / 1000) : "",
    labels: Object.entries(c.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(", "),
  };
}

/** "site=dock, floor=1" → { site: "dock", floor: "1" }; a malformed entry is reported by name. */
export function parseLabels(text: string): { labels: Record<string, string>; error?: string } {
  const labels: Record<string, string> = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const i = part.indexOf("=");
    if (i <= 0) return { labels, error: `"${part}" is not key=value` };
    labels[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return { labels };
}

function describeTest(t: TestCameraConnectionResponse): { ok: boolean; text: string } {
  if (t.result === ConnectionTestResult.OK) {
    const tracks = t.tracks.map((x) => (x.width ? `${x.codec} ${x.width}×${x.height}` : x.codec)).join(", ");
    return { ok: true, text: `Connected: ${tracks || "no tracks reported"}` };
  }
  const why: Partial<Record<ConnectionTestResult, string>> = {
    [ConnectionTestResult.UNREACHABLE]: "Unreachable",
    [ConnectionTestResult.TIMEOUT]: "Timed out",
    [ConnectionTestResult.AUTH_FAILED]: "Wrong username or password",
  };
  return { ok: false, text: `${why[t.result] ?? "Failed"}: ${t.errorMessage || "no detail"}` };
}

export function CameraForm({ cameraId }: { cameraId?: string }) {
  const cameras = useCameras();
  const existing = cameraId ? cameras.data?.find((c) => c.id === cameraId) : undefined;
  const [edits, setForm] = useState<FormState | undefined>();
  const form = edits ?? (existing ? fromCamera(existing) : EMPTY);
  const [test, setTest] = useState<{ ok: boolean; text: string } | undefined>();
  const [testing, setTesting] = useState(false);
  const [problem, setProblem] = useState<Problem | undefined>();
  const [saving, setSaving] = useState(false);
  const canGrant = useCan("camera.grant");
  const queries = useQueryClient();
  const navigate = useNavigate();
  const toast = useToast();

  if (cameraId && cameras.isPending) return <Loading label="Loading camera" />;
  if (cameraId && !existing) return <ProblemNote problem={{ title: "Not found", message: "No such camera, or you may not manage it.", fields: {}, facts: undefined }} />;

  const set =
    <K extends keyof FormState>(k: K) =>
    (v: FormState[K]) => {
      setForm({ ...form, [k]: v });
      if (k === "sourceUrl" || k === "username" || k === "password" || k === "transport") setTest(undefined);
    };
  const labels = parseLabels(form.labels);
  const sourceChanged = !existing || form.sourceUrl !== existing.sourceUrl || form.username !== existing.username || form.password !== "";

  const runTest = async () => {
    setTesting(true);
    setTest(undefined);
    setProblem(undefined);
    try {
      const r = await api.cameras.testCameraConnection({
        sourceUrl: form.sourceUrl,
        username: form.username,
        password: form.password,
        transport: form.transport,
        cameraId: existing && form.password === "" ? existing.id : "",
      });
      setTest(describeTest(r));
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setTesting(false);
    }
  };

  const save = async (e: SubmitEvent) => {
    e.preventDefault();
    if (labels.error) return;
    setSaving(true);
    setProblem(undefined);
    const segment = Number(form.segmentSeconds);
    const camera = {
      name: form.name,
      location: form.location,
      description: form.description,
      sourceUrl: form.sourceUrl,
      username: form.username,
      transport: form.transport,
      enabled: form.enabled,
      recordingEnabled: form.recordingEnabled,
      recordingMode: form.recordingMode,
      labels: labels.labels,
      segmentDuration: form.segmentSeconds && segment > 0 ? durationFromMs(segment * 1000) : undefined,
    };
    try {
      let saved: Camera | undefined;
      if (!existing) {
        saved = (await api.cameras.createCamera({ camera, password: form.password })).camera;
      } else {
        const paths = ["name", "location", "description", "transport", "enabled", "recording_enabled", "recording_mode", "labels"];
        if (camera.segmentDuration) paths.push("segment_duration");
        let etag = existing.etag;
        if (sourceChanged) {
          const r = await api.cameras.setCameraSource({
            cameraId: existing.id,
            sourceUrl: form.sourceUrl,
            username: form.username,
            password: form.password,
            keepPassword: form.password === "" && existing.hasPassword,
            etag,
          });
          etag = r.camera?.etag ?? etag;
        }
        saved = (await api.cameras.updateCamera({ camera: { ...camera, id: existing.id, etag }, updateMask: { paths } })).camera;
      }
      void queries.invalidateQueries({ queryKey: keys.cameras });
      toast({ title: `${saved?.name ?? form.name} saved`, tone: "success" });
      void navigate({ to: "/cameras" });
    } catch (err) {
      setProblem(describeError(err));
    } finally {
      setSaving(false);
    }
  };

  const f = problem?.fields ?? {};
  const field = (name: string) => f[`camera.${name}`] ?? f[name];

  return (
    <div className="mx-auto max-w-3xl space-y-4">
      <PageHeader title={existing ? `Edit ${existing.name}` : "Add camera"} />
      <form onSubmit={(e) => void save(e)} className="space-y-4" aria-label={existing ? "Edit camera" : "Add camera"}>
        <Card className="space-y-4">
          <h2 className="font-semibold">Camera</h2>
          <Field label="Name" required value={form.name} onChange={(e) => set("name")(e.target.value)} error={field("name")} />
          <div className="grid gap-4 md:grid-cols-2">
            <Field label="Location" value={form.location} onChange={(e) => set("location")(e.target.value)} error={field("location")} />
            <Field label="Labels" value={form.labels} onChange={(e) => set("labels")(e.target.value)} error={labels.error ?? field("labels")} hint="key=value, comma separated; the live grid groups by them." />
          </div>
          <Field label="Description" value={form.description} onChange={(e) => set("description")(e.target.value)} error={field("description")} />
        </Card>
        <Card className="space-y-4">
          <h2 className="font-semibold">Source</h2>
          <Field label="RTSP URL" required placeholder="rtsp://192.168.1.20:554/stream1" value={form.sourceUrl} onChange={(e) => set("sourceUrl")(e.target.value)} error={field("source_url") ?? f.source_url} />
          <div className="grid gap-4 md:grid-cols-3">
            <Field label="Camera username" autoComplete="off" value={form.username} onChange={(e) => set("username")(e.target.value)} error={field("username")} />
            <Field
              label="Camera password"
              type="password"
              autoComplete="new-password"
              value={form.password}
              onChange={(e) => set("password")(e.target.value)}
              error={f.password}
              hint={existing?.hasPassword ? "Stored, never shown. Leave empty to keep it." : "Stored encrypted, never shown again."}
            />
            <SelectField label="Transport" value={form.transport} onChange={(e) => set("transport")(transportOf(e.target.value))}>
              <option value={RtspTransport.AUTO}>Automatic</option>
              <option value={RtspTransport.TCP}>TCP</option>
              <option value={RtspTransport.UDP}>UDP</option>
            </SelectField>
          </div>
          <div className="flex flex-wrap items-center gap-3">
            <Button type="button" onClick={() => void runTest()} busy={testing} disabled={!form.sourceUrl}>
              {testing ? "Testing…" : "Test connection"}
            </Button>
            {test ? (
              <p role="status" data-testid="connection-test" data-ok={test.ok} className={`text-sm ${test.ok ? "text-emerald-700 dark:text-emerald-400" : "text-red-700 dark:text-red-400"}`}>
                {test.text}
              </p>
            ) : null}
          </div>
        </Card>
        <Card className="space-y-4">
          <h2 className="font-semibold">Recording</h2>
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={form.enabled} onChange={(e) => set("enabled")(e.target.checked)} /> Enabled (streams and records)
          </label>
          <label className="flex items-center gap-2 text-sm">
            <input type="checkbox" checked={form.recordingEnabled} onChange={(e) => set("recordingEnabled")(e.target.checked)} /> Record this camera
          </label>
          <div className="grid gap-4 md:grid-cols-2">
            <SelectField label="Recording mode" value={form.recordingMode} onChange={(e) => set("recordingMode")(modeOf(e.target.value))}>
              <option value={RecordingMode.CONTINUOUS}>Continuous</option>
              <option value={RecordingMode.EVENTS}>Events only</option>
            </SelectField>
            <Field label="Segment length (seconds)" type="number" min={1} value={form.segmentSeconds} onChange={(e) => set("segmentSeconds")(e.target.value)} error={field("segment_duration")} hint="Empty: the server's default." />
          </div>
        </Card>
        {!existing ? <Notice>Test the connection before saving: a camera that cannot be reached is saved all the same, and shows as offline.</Notice> : null}
        <ProblemNote problem={problem} />
        <div className="flex gap-2">
          <Button type="submit" tone="primary" busy={saving}>
            {existing ? "Save changes" : "Add camera"}
          </Button>
          <Button asChild>
            <Link to="/cameras">Cancel</Link>
          </Button>
        </div>
      </form>
      {existing && canGrant ? <Grants camera={existing} /> : null}
    </div>
  );
}
