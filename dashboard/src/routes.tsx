// The app's routes (typed, with search params validated into the URL so that a shared link opens
// the same grid or camera), under /ui/.

import { createRootRoute, createRoute, createRouter } from "@tanstack/react-router";
import { Shell } from "./app/Shell";
import { Account } from "./features/system/Account";
import { CameraForm } from "./features/cameras/CameraForm";
import { CamerasPage } from "./features/cameras/CamerasPage";
import { EventsPage } from "./features/events/EventsPage";
import { CameraView } from "./features/live/CameraView";
import { LiveGrid } from "./features/live/LiveGrid";
import { SystemPage } from "./features/system/SystemPage";
import { isLayoutId } from "./lib/layout";
import type { LayoutId } from "./lib/layout";

const rootRoute = createRootRoute({ component: Shell });

export interface GridSearch {
  layout?: LayoutId;
  group?: string;
  page?: number;
}

const liveRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/",
  validateSearch: (s: Record<string, unknown>): GridSearch => ({
    layout: isLayoutId(s.layout) ? s.layout : undefined,
    group: typeof s.group === "string" && s.group ? s.group : undefined,
    page: typeof s.page === "number" && Number.isInteger(s.page) && s.page > 0 ? s.page : undefined,
  }),
  component: LiveGrid,
});

const cameraViewRoute = createRoute({ getParentRoute: () => rootRoute, path: "/camera/$cameraId", component: CameraView });
const camerasRoute = createRoute({ getParentRoute: () => rootRoute, path: "/cameras", component: CamerasPage });
const newCameraRoute = createRoute({ getParentRoute: () => rootRoute, path: "/cameras/new", component: () => <CameraForm /> });
const editCameraRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/cameras/$cameraId/edit",
  component: function EditCamera() {
    const { cameraId } = editCameraRoute.useParams();
    return <CameraForm cameraId={cameraId} />;
  },
});

export interface EventsSearch {
  camera?: string;
  type?: string;
}

const eventsRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/events",
  validateSearch: (s: Record<string, unknown>): EventsSearch => ({
    camera: typeof s.camera === "string" && s.camera ? s.camera : undefined,
    type: typeof s.type === "string" && s.type ? s.type : undefined,
  }),
  component: EventsPage,
});
const systemRoute = createRoute({ getParentRoute: () => rootRoute, path: "/system", component: SystemPage });
const accountRoute = createRoute({ getParentRoute: () => rootRoute, path: "/account", component: Account });

const routeTree = rootRoute.addChildren([
  liveRoute,
  cameraViewRoute,
  camerasRoute,
  newCameraRoute,
  editCameraRoute,
  eventsRoute,
  systemRoute,
  accountRoute,
]);

export const router = createRouter({ routeTree, basepath: "/ui", defaultPreload: false });

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}

export { cameraViewRoute, eventsRoute, liveRoute };
