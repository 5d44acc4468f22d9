/**
 * Accessibility repairs for bull-board 9.10.1's page, which holdfast serves but does not build:
 * a script and a style sheet added to the page (withRepairs in dashboard.ts). axe-core found, on
 * a queue page with job cards: icon buttons with no name (the header's, the account menu's,
 * each card's copy button), a decorative logo svg given role="img" and no name, the workers
 * badge whose aria-label does not contain its visible text, and grey text below 4.5:1 contrast.
 * The script names what it can tell apart by its icon, and runs again whenever React redraws;
 * test/http/admin-pages.browser.test.ts runs axe on the repaired page with no rule excluded.
 */
export const A11Y_SCRIPT_PATH = "holdfast-a11y.js";

/** Button names by the lucide icon they show. */
const ICON_NAMES: Record<string, string> = {
  maximize: "Full screen",
  minimize: "Exit full screen",
  settings: "Settings",
  "circle-user": "Account menu",
  copy: "Copy",
  check: "Copied",
};

export const A11Y_SCRIPT = `(() => {
  const ICON_NAMES = ${JSON.stringify(ICON_NAMES)};
  const named = (el) =>
    (el.getAttribute("aria-label") || el.getAttribute("title") || el.innerText || "").trim() !== "";
  const repair = () => {
    for (const svg of document.querySelectorAll('svg[role="img"]:not([aria-label]):not([aria-hidden])')) {
      svg.setAttribute(svg.closest("button") ? "aria-hidden" : "aria-label", svg.closest("button") ? "true" : "bull-board");
    }
    for (const button of document.querySelectorAll("button")) {
      if (named(button)) continue;
      const icon = [...button.querySelectorAll("svg")]
        .flatMap((svg) => [...svg.classList])
        .find((c) => c.startsWith("lucide-"));
      const name = icon ? ICON_NAMES[icon.slice(7)] || icon.slice(7).replace(/-/g, " ")
        : button.querySelector(".rds-b1") ? "Redis details"
        : [...button.classList].some((c) => c.startsWith("copyBtn-")) ? "Copy"
        : "Button";
      button.setAttribute("aria-label", name);
    }
    for (const badge of document.querySelectorAll('[class*="workersBadge-"][aria-label]')) {
      const text = (badge.textContent || "").trim();
      const label = badge.getAttribute("aria-label") || "";
      if (text && !label.startsWith(text)) badge.setAttribute("aria-label", text + ": " + label);
    }
  };
  new MutationObserver(repair).observe(document.documentElement, { subtree: true, childList: true });
  repair();
})();
`;

/** Darker greys for the texts axe found below 4.5:1 against their background. */
export const A11Y_STYLE = `<style>
[class*="searchShortcut-"] { color: #3d4451 !important; }
[class*="active-"] > [class*="queueName-"] { color: #111827 !important; }
[class*="timeline-"] small { color: #4a5261 !important; }
[class*="nullValue-"] { color: #5c4400 !important; }
</style>`;
