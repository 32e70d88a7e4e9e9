// The app's routes (typed, with search params validated into the URL so that a shared link opens
// the same grid or camera), under /ui/.

import { createRootRoute, createRoute, createRouter } from "@tanstack/react-router";
import { NotFound, RouteError } from "./app/RouteError";
import { Shell } from "./app/Shell";
import { Account } from "./features/system/Account";
import { CameraForm } from "./features/cameras/CameraForm";
import { CamerasPage } from "./features/cameras/CamerasPage";
import { EventsPage } from "./features/events/EventsPage";
import { CameraView } from "./features/live/CameraView";
import { LiveGrid } from "./features/live/LiveGrid";
import { SystemPage } from "./features/system/SystemPage";
import { useCan } from "./api/session";
import { isLayoutId } from "./lib/layout";
import { EmptyState } from "./ui/kit";
import type { ReactNode } from "react";
import type { LayoutId } from "./lib/layout";

const rootRoute = createRootRoute({ component: Shell });

/** A screen for holders of `permission` only (a link shared with someone else says so plainly). */
function Guard({ permission, children }: { permission: string; children: ReactNode }) {
  return useCan(permission) ? children : <EmptyState title="Not available">Your account may not use this screen.</EmptyState>;
}


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
const camerasRoute = createRoute({ getParentRoute: () => rootRoute, path: "/cameras", component: () => (
    <Guard permission="camera.write">
      <CamerasPage />
    </Guard>
  ) });
const newCameraRoute = createRoute({ getParentRoute: () => rootRoute, path: "/cameras/new", component: () => (
    <Guard permission="camera.write">
      <CameraForm />
    </Guard>
  ) });
const editCameraRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/cameras/$cameraId/edit",
  component: function EditCamera() {
    const { cameraId } = editCameraRoute.useParams();
    return (
      <Guard permission="camera.write">
        <CameraForm cameraId={cameraId} />
      </Guard>
    );
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
  component: () => (
    <Guard permission="event.watch">
      <EventsPage />
    </Guard>
  ),
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

export const router = createRouter({
  routeTree,
  basepath: "/ui",
  defaultPreload: false,
  defaultErrorComponent: RouteError,
  defaultNotFoundComponent: NotFound,
});

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}

export { cameraViewRoute, eventsRoute, liveRoute };
