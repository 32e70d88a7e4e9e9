// The frame of the app: the session gate (setup, sign-in, enrolment) in front of everything, then the
// navigation (a bar on wide screens, a menu on phones), the live event feed, the step-up dialog and
// the routed screen.

import { Link, Outlet } from "@tanstack/react-router";
import { Menu, Moon, Sun, Monitor, X } from "lucide-react";
import { useState } from "react";
import { api } from "../api/client";
import { useCan, useMe, useSession } from "../api/session";
import { AuthFrame } from "../features/auth/AuthFrame";
import { EnrolTotp } from "../features/auth/EnrolTotp";
import { Setup } from "../features/auth/Setup";
import { SignIn } from "../features/auth/SignIn";
import { StepUpDialog } from "../features/auth/StepUpDialog";
import { EventFeedProvider, FeedIndicator } from "../features/events/feed";
import { Button, Loading } from "../ui/kit";
import { setTheme, themeChoice } from "./theme";
import type { ThemeChoice } from "./theme";

export function Shell() {
  const { state, signedIn } = useSession();
  switch (state.kind) {
    case "loading":
      return (
        <main className="mx-auto max-w-md p-10">
          <Loading label="Loading OpenNVR" rows={3} />
        </main>
      );
    case "unreachable":
      return (
        <AuthFrame title="Server unreachable">
          <p role="alert" className="mb-4 text-sm">
            The OpenNVR server did not answer: {state.message}
          </p>
          <Button onClick={() => window.location.reload()}>Try again</Button>
        </AuthFrame>
      );
    case "signedOut":
      return state.options.setupRequired ? <Setup /> : <SignIn options={state.options} notice={state.notice} />;
    case "enrolling":
      return (
        <AuthFrame title="Protect your account">
          <EnrolTotp
            intro="Your role needs a second factor. Enrol an authenticator app to continue."
            onDone={async () => signedIn(await api.refresh())}
          />
        </AuthFrame>
      );
    case "signedIn":
      return (
        <EventFeedProvider>
          <AppFrame />
          <StepUpDialog />
        </EventFeedProvider>
      );
  }
}

const NAV = "rounded-md px-3 py-2 text-sm font-medium text-slate-700 hover:bg-slate-200 dark:text-slate-200 dark:hover:bg-slate-800";
const NAV_ACTIVE = "bg-slate-200 dark:bg-slate-800";

function NavLinks({ onNavigate }: { onNavigate?: () => void }) {
  const canManageCameras = useCan("camera.write");
  const canWatch = useCan("event.watch");
  const canReadStorage = useCan("storage.read");
  const canReadAdapters = useCan("inference.read");
  const canSeeSystem = canManageCameras || canReadStorage || canReadAdapters;
  const link = (to: "/" | "/cameras" | "/events" | "/system" | "/account", label: string) => (
    <Link to={to} className={NAV} activeProps={{ className: NAV_ACTIVE, "aria-current": "page" }} activeOptions={{ exact: to === "/", includeSearch: false }} onClick={onNavigate}>
      {label}
    </Link>
  );
  return (
    <>
      {link("/", "Live")}
      {canManageCameras ? link("/cameras", "Cameras") : null}
      {canWatch ? link("/events", "Events") : null}
      {canSeeSystem ? link("/system", "System") : null}
      {link("/account", "Account")}
    </>
  );
}

function ThemeSwitch() {
  const [choice, setChoice] = useState<ThemeChoice>(themeChoice());
  const next: Record<ThemeChoice, ThemeChoice> = { system: "light", light: "dark", dark: "system" };
  const Icon = choice === "light" ? Sun : choice === "dark" ? Moon : Monitor;
  return (
    <Button
      tone="ghost"
      aria-label={`Theme: ${choice} (switch to ${next[choice]})`}
      title={`Theme: ${choice}`}
      onClick={() => {
        setTheme(next[choice]);
        setChoice(next[choice]);
      }}
    >
      <Icon className="h-4 w-4" aria-hidden />
    </Button>
  );
}

function AppFrame() {
  const me = useMe();
  const { signOut } = useSession();
  const [menuOpen, setMenuOpen] = useState(false);
  return (
    <div className="flex min-h-screen flex-col">
      <header className="sticky top-0 z-30 border-b border-slate-200 bg-white/95 backdrop-blur dark:border-slate-800 dark:bg-slate-900/95">
        <div className="flex h-14 items-center gap-2 px-3">
          <Link to="/" className="mr-2 flex items-center gap-2 font-semibold text-teal-700 dark:text-teal-400">
            <img src="/ui/favicon.svg" alt="" className="h-6 w-6" /> OpenNVR
          </Link>
          <nav aria-label="Main" className="hidden items-center gap-1 md:flex">
            <NavLinks />
          </nav>
          <div className="ml-auto flex items-center gap-1">
            <FeedIndicator />
            <ThemeSwitch />
            <span className="hidden text-sm text-slate-600 sm:inline dark:text-slate-400" title={me.user?.username}>
              {me.user?.displayName || me.user?.username}
            </span>
            <Button tone="ghost" className="hidden md:inline-flex" onClick={() => void signOut()}>
              Sign out
            </Button>
            <Button tone="ghost" className="md:hidden" aria-label={menuOpen ? "Close menu" : "Open menu"} aria-expanded={menuOpen} onClick={() => setMenuOpen(!menuOpen)}>
              {menuOpen ? <X className="h-5 w-5" aria-hidden /> : <Menu className="h-5 w-5" aria-hidden />}
            </Button>
          </div>
        </div>
        {menuOpen ? (
          <nav aria-label="Main" className="flex flex-col gap-1 border-t border-slate-200 p-2 md:hidden dark:border-slate-800">
            <NavLinks onNavigate={() => setMenuOpen(false)} />
            <Button tone="ghost" className="justify-start" onClick={() => void signOut()}>
              Sign out
            </Button>
          </nav>
        ) : null}
      </header>
      <main className="flex-1 p-3 md:p-4">
        <Outlet />
      </main>
    </div>
  );
}
