import type { ErrorObject, ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsPlugin from "ajv-formats";
import type { Hono } from "hono";
import { servedDocument } from "../../scripts/openapi-document.ts";
import { type ErrorCode, statusFor } from "../../src/http/problem.ts";

/**
 * The contract test: every response a test receives is checked against the served
 * /openapi.json (status, headers, body) by ajv, and a response the document does not declare
 * fails the test that got it.
 */

interface MediaType {
  schema?: unknown;
}
interface ResponseObject {
  headers?: Record<string, { $ref?: string; required?: boolean; schema?: unknown }>;
  content?: Record<string, MediaType>;
}
interface Operation {
  responses: Record<string, ResponseObject>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { headers?: Record<string, { required?: boolean; schema?: unknown }> };
}

export interface ContractResponse {
  status: number;
  headers: Headers;
  text: string;
}

/** Sent on every response by the HTTP stack and hono's secureHeaders, not per operation. */
const AMBIENT_HEADERS = new Set([
  "content-type",
  "content-length",
  "date",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-security-policy",
  "cross-origin-opener-policy",
  "cross-origin-resource-policy",
  "origin-agent-cluster",
  "referrer-policy",
  "strict-transport-security",
  "x-content-type-options",
  "x-dns-prefetch-control",
  "x-download-options",
  "x-frame-options",
  "x-permitted-cross-domain-policies",
  "x-xss-protection",
]);

/** Served by the app but not API operations: the document itself, its reader, metrics, dashboards. */
const OUTSIDE_THE_API = [/^\/openapi\.json$/, /^\/docs(\/|$)/, /^\/metrics$/, /^\/admin(\/|$)/];

/** Under /v1/, what the document's description says comes before a 404 or 405. */
const V1_FIRST = ["payload_too_large", "unauthorized"];

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

const pointer = (...parts: string[]) =>
  `openapi.json#/${parts.map((p) => p.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;

class Contract {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly routes: { template: string; pattern: RegExp; literals: number }[];

  constructor(private readonly doc: Document) {
    (addFormatsPlugin as unknown as (ajv: Ajv2020) => void)(this.ajv);
    this.ajv.addSchema(doc as object, "openapi.json");
    this.routes = Object.keys(doc.paths)
      .map((template) => {
        const segments = template.split("/");
        const source = segments
          .map((s) => (/^\{.+\}$/.test(s) ? "[^/]+" : s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
          .join("/");
        return {
          template,
          pattern: new RegExp(`^${source}$`),
          literals: segments.filter((s) => !s.startsWith("{")).length,
        };
      })
      .sort((a, b) => b.literals - a.literals);
  }

  private validator(ref: string): ValidateFunction {
    let validate = this.validators.get(ref);
    if (!validate) {
      validate = this.ajv.getSchema(ref);
      if (!validate) throw new Error(`no schema at ${ref}`);
      this.validators.set(ref, validate);
    }
    return validate;
  }

  private check(ref: string, value: unknown, what: string): string[] {
    const validate = this.validator(ref);
    if (validate(value)) return [];
    return (validate.errors ?? []).map(
      (e: ErrorObject) => `${what}${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`,
    );
  }

  violations(method: string, url: string, res: ContractResponse): string[] {
    const path = new URL(url, "http://localhost").pathname;
    if (OUTSIDE_THE_API.some((p) => p.test(path))) return [];
    const route = this.routes.find((r) => r.pattern.test(path));
    const verb = method.toLowerCase() === "head" ? "get" : method.toLowerCase();
    if (!route) return this.noRoute(path, res);
    const item = this.doc.paths[route.template]!;
    const operation = item[verb];
    if (!operation) return this.wrongMethod(path, item, res);

    const status = String(res.status);
    const responseKey = [status, `${status[0]}XX`, "default"].find((k) => k in operation.responses);
    const where = [`paths`, route.template, verb, "responses"];
    if (!responseKey) {
      const declared = Object.keys(operation.responses).join(", ");
      return [
        `status ${status} is not declared (declared: ${declared}): ${res.text.slice(0, 300)}`,
      ];
    }
    const declared = operation.responses[responseKey]!;
    where.push(responseKey);
    return [
      ...this.headerViolations(declared, res, where),
      ...this.bodyViolations(declared, res, method.toLowerCase() === "head", where),
    ];
  }

  private headerViolations(
    declared: ResponseObject,
    res: ContractResponse,
    where: string[],
  ): string[] {
    const out: string[] = [];
    const headers = new Map(
      Object.entries(declared.headers ?? {}).map(([name, h]) => {
        const component = h.$ref && this.doc.components.headers?.[h.$ref.split("/").pop()!];
        const schema = h.$ref
          ? `openapi.json${h.$ref}/schema`
          : pointer(...where, "headers", name, "schema");
        return [name.toLowerCase(), { schema, required: (component || h).required }];
      }),
    );
    for (const [name, value] of res.headers) {
      if (AMBIENT_HEADERS.has(name)) continue;
      const header = headers.get(name);
      if (!header) out.push(`header ${name} is not declared`);
      else out.push(...this.check(header.schema, value, `header ${name}`));
    }
    for (const [name, header] of headers) {
      if (header.required && !res.headers.has(name)) out.push(`required header ${name} is missing`);
    }
    return out;
  }

  private bodyViolations(
    declared: ResponseObject,
    res: ContractResponse,
    head: boolean,
    where: string[],
  ): string[] {
    const content = declared.content ?? {};
    const type = res.headers.get("content-type")?.split(";")[0]?.trim();
    if (Object.keys(content).length === 0) {
      return res.text === "" ? [] : [`a body was sent where none is declared: ${type}`];
    }
    if (!type || !(type in content)) {
      return [
        `content-type ${type} is not declared (declared: ${Object.keys(content).join(", ")})`,
      ];
    }
    if (head) return [];
    let body: unknown;
    try {
      body = JSON.parse(res.text);
    } catch {
      return [`the ${type} body is not JSON: ${res.text.slice(0, 200)}`];
    }
    return this.check(pointer(...where, "content", type, "schema"), body, "body");
  }

  /** A path the document does not list: a problem with one of the codes it says. */
  private noRoute(path: string, res: ContractResponse): string[] {
    const codes = ["not_found", ...(path.startsWith("/v1/") ? V1_FIRST : [])];
    return this.problem(res, codes, `${path} is not in the document`);
  }

  /** A listed path, a method it does not take: 405 with an Allow naming the listed methods. */
  private wrongMethod(
    path: string,
    item: Record<string, Operation>,
    res: ContractResponse,
  ): string[] {
    const codes = ["method_not_allowed", ...(path.startsWith("/v1/") ? V1_FIRST : [])];
    const out = this.problem(res, codes, "method not in the document");
    if (res.status !== 405) return out;
    const listed = METHODS.filter((m) => m in item).map((m) => m.toUpperCase());
    if (listed.includes("GET")) listed.push("HEAD");
    const allow = (res.headers.get("allow") ?? "").split(/,\s*/).filter(Boolean);
    if (allow.sort().join() !== listed.sort().join())
      out.push(`Allow ${allow.join(", ")} differs from the document's ${listed.join(", ")}`);
    return out;
  }

  private problem(res: ContractResponse, codes: readonly string[], context: string): string[] {
    const type = res.headers.get("content-type");
    if (type !== "application/problem+json")
      return [`${context}: a ${res.status} with content-type ${type}`];
    const body = JSON.parse(res.text) as { code?: string };
    const out = this.check("openapi.json#/components/schemas/Problem", body, "body");
    const code = body.code ?? "";
    if (!codes.includes(code) || statusFor(code as ErrorCode) !== res.status)
      out.push(`${context}: ${res.status} ${code} is not what the document says it answers`);
    return out;
  }
}

let contract: Promise<Contract> | undefined;
const load = () => {
  contract ??= servedDocument().then((text) => new Contract(JSON.parse(text) as Document));
  return contract;
};

/** Violations that tests have not yet been failed for; contract-setup.ts fails the test. */
export const unreported: string[] = [];

/** Throws (and records) when the document does not declare this response. */
export async function expectContract(
  method: string,
  url: string,
  res: ContractResponse,
): Promise<void> {
  const found = (await load()).violations(method, url, res);
  if (found.length === 0) return;
  const message = `response outside the OpenAPI document: ${method} ${url.slice(0, 200)} → ${res.status}\n  ${found.join("\n  ")}`;
  unreported.push(message);
  throw new Error(message);
}

/** Makes an in-process app check each response its request() answers against the document. */
export function checkResponses(app: { request: Hono["request"] }): void {
  const request = app.request.bind(app);
  app.request = async (input, init, ...rest) => {
    const res = await request(input, init, ...rest);
    const req = input instanceof Request ? input : undefined;
    const copy = res.clone();
    await expectContract(init?.method ?? req?.method ?? "GET", req?.url ?? String(input), {
      status: copy.status,
      headers: copy.headers,
      text: await copy.text(),
    });
    return res;
  };
}

/** fetch, with each response checked against the document. */
export const contractFetch: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const res = await fetch(request);
  const copy = res.clone();
  await expectContract(request.method, request.url, {
    status: copy.status,
    headers: copy.headers,
    text: await copy.text(),
  });
  return res;
};
