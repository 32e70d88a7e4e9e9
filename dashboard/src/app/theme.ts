// Light, dark or the system's choice, remembered on this device.

export type ThemeChoice = "system" | "light" | "dark";
const KEY = "opennvr.theme";

export function themeChoice(): ThemeChoice {
  const v = localStorage.getItem(KEY);
  return v === "light" || v === "dark" ? v : "system";
}

const media = window.matchMedia("(prefers-color-scheme: dark)");

export function applyTheme(choice: ThemeChoice = themeChoice()): void {
  const dark = choice === "dark" || (choice === "system" && media.matches);
  document.documentElement.classList.toggle("dark", dark);
}

export function setTheme(choice: ThemeChoice): void {
  if (choice === "system") localStorage.removeItem(KEY);
  else localStorage.setItem(KEY, choice);
  applyTheme(choice);
}

media.addEventListener("change", () => applyTheme());
