// Toasts on Radix's Toast: one viewport for the app, announced politely (or assertively for alerts).

import { Toast } from "radix-ui";
import { createContext, useCallback, useContext, useMemo, useState } from "react";
import type { ReactNode } from "react";

export interface ToastMessage {
  id: string;
  title: string;
  body?: string;
  tone?: "info" | "warning" | "critical" | "success";
}

const ToastContext = createContext<(t: Omit<ToastMessage, "id"> & { id?: string }) => void>(() => undefined);

const TONES = {
  info: "border-slate-300 dark:border-slate-700",
  success: "border-emerald-500",
  warning: "border-amber-500",
  critical: "border-red-600",
};

export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<ToastMessage[]>([]);
  const push = useCallback((t: Omit<ToastMessage, "id"> & { id?: string }) => {
    const id = t.id ?? crypto.randomUUID();
    setToasts((all) => [...all.filter((x) => x.id !== id), { ...t, id }].slice(-5));
  }, []);
  const drop = (id: string) => setToasts((all) => all.filter((x) => x.id !== id));
  const value = useMemo(() => push, [push]);
  return (
    <ToastContext.Provider value={value}>
      <Toast.Provider swipeDirection="right" duration={8000}>
        {children}
        {toasts.map((t) => (
          <Toast.Root
            key={t.id}
            type={t.tone === "critical" || t.tone === "warning" ? "foreground" : "background"}
            onOpenChange={(open) => !open && drop(t.id)}
            className={`relative rounded-md border-l-4 bg-white p-3 pr-8 shadow-lg dark:bg-slate-900 ${TONES[t.tone ?? "info"]}`}
          >
            <Toast.Title className="text-sm font-semibold">{t.title}</Toast.Title>
            {t.body ? <Toast.Description className="mt-1 text-sm text-slate-600 dark:text-slate-300">{t.body}</Toast.Description> : null}
            <Toast.Close aria-label="Dismiss" className="absolute right-2 top-2 text-slate-500">
              ×
            </Toast.Close>
          </Toast.Root>
        ))}
        <Toast.Viewport className="fixed bottom-4 right-4 z-50 flex w-[min(92vw,24rem)] flex-col gap-2 outline-none" />
      </Toast.Provider>
    </ToastContext.Provider>
  );
}

export function useToast() {
  return useContext(ToastContext);
}
