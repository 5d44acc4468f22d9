import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (dir: string) =>
  readdirSync(new URL(`../../${dir}/`, import.meta.url))
    .filter((name) => name.endsWith(".sql"))
    .sort()
    .map((name) => ({
      name,
      text: readFileSync(new URL(`../../${dir}/${name}`, import.meta.url), "utf8"),
    }));

const sources = read("src/db/sql");
const migrations = read("drizzle");

/** The function a source file defines: CREATE [OR REPLACE] FUNCTION name( */
const definedName = (text: string) => /CREATE (?:OR REPLACE )?FUNCTION (\w+)\(/.exec(text)?.[1];

describe("src/db/sql, the canonical SQL functions", () => {
  it.each(sources.map((s) => [s.name, s] as const))(
    "%s is, verbatim, the newest definition of its function in drizzle/",
    (_name, source) => {
      const name = definedName(source.text);
      expect(name).toBeDefined();
      const defining = migrations.filter((m) =>
        new RegExp(`CREATE (?:OR REPLACE )?FUNCTION ${name}\\(`).test(m.text),
      );
      expect(defining.length).toBeGreaterThan(0);
      expect(defining.at(-1)!.text).toContain(source.text.trim());
    },
  );
});
