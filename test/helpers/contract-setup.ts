import { afterEach } from "vitest";
import { unreported } from "./contract.ts";

// A contract violation throws in the test that got it; this also fails a test that caught it.
afterEach(() => {
  const found = unreported.splice(0);
  if (found.length > 0) throw new Error(found.join("\n"));
});
