import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Hono } from "hono";
import type { AppEnv } from "./context.ts";
import { docsHeaders } from "./page-headers.ts";

const dist = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const { version } = JSON.parse(readFileSync(join(dist, "package.json"), "utf8")) as {
  version: string;
};

/** The pinned swagger-ui's files, under a path that names its version, so they never go stale. */
export const DOCS_ASSETS = `/docs/assets/${version}`;

const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>holdfast API</title>
<link rel="stylesheet" href="${DOCS_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="${DOCS_ASSETS}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// validatorUrl null: swagger-ui would otherwise send the document to validator.swagger.io.
const INIT = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
});
`;

const files = new Map<string, Buffer>();
const read = (name: string) => {
  let file = files.get(name);
  if (!file) {
    file = readFileSync(join(dist, name));
    files.set(name, file);
  }
  return file;
};

/** /docs: swagger-ui from the swagger-ui-dist package, so the reference works offline. */
export function serveDocs(app: Hono<AppEnv>) {
  app.get("/docs", docsHeaders, (c) => c.html(PAGE, 200, { "Cache-Control": "no-cache" }));
  app.get("/docs/init.js", (c) =>
    c.body(INIT, 200, {
      "Content-Type": ASSETS["swagger-ui-bundle.js"]!,
      "Cache-Control": "no-cache",
    }),
  );
  app.get(`${DOCS_ASSETS}/:name`, (c) => {
    const name = c.req.param("name");
    if (!Object.hasOwn(ASSETS, name)) return c.notFound();
    return c.body(new Uint8Array(read(name)), 200, {
      "Content-Type": ASSETS[name]!,
      "Cache-Control": "public, max-age=31536000, immutable",
    });
  });
}
