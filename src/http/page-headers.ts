import { NONCE, secureHeaders } from "hono/secure-headers";

/**
 * Content-Security-Policy for the HTML pages. Each page loads only from this origin, may not be
 * framed (frame-ancestors 'none', the clickjacking guard for pages with write actions), and
 * submits forms only here. app.ts's secureHeaders() still adds nosniff and the rest.
 */
const SAME_ORIGIN = {
  defaultSrc: ["'self'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  objectSrc: ["'none'"],
  imgSrc: ["'self'", "data:"],
};

/** The holds panel: no script at all, its one <style> element carries the nonce. */
export const panelHeaders = secureHeaders({
  contentSecurityPolicy: {
    ...SAME_ORIGIN,
    defaultSrc: ["'none'"],
    styleSrc: [NONCE],
  },
});

/**
 * bull-board: its bundles come from this origin; its React components set style attributes and
 * its page has an inline <style>, hence 'unsafe-inline' for styles only.
 */
export const dashboardHeaders = secureHeaders({
  contentSecurityPolicy: {
    ...SAME_ORIGIN,
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    fontSrc: ["'self'"],
    connectSrc: ["'self'"],
  },
});

/** /docs: swagger-ui's bundle and its initialiser from this origin; it sets style attributes. */
export const docsHeaders = secureHeaders({
  contentSecurityPolicy: {
    ...SAME_ORIGIN,
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    connectSrc: ["'self'"],
    formAction: ["'none'"],
  },
});
