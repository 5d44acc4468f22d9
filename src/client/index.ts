import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.d.ts";

export type { components, operations, paths } from "./schema.d.ts";

/** A typed holdfast client, its paths, bodies and answers generated from /openapi.json. */
export type HoldfastClient = Client<paths>;

export function createHoldfastClient(options: {
  baseUrl: string;
  token: string;
  fetch?: (request: Request) => Promise<Response>;
}): HoldfastClient {
  return createClient<paths>({
    baseUrl: options.baseUrl,
    headers: { authorization: `Bearer ${options.token}` },
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
