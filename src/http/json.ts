/**
 * JSON.stringify that writes bigint values as JSON integers. Only a system account's total
 * can exceed 2^53 − 1; every user balance and amount is a safe integer and stays a number.
 */
export function stringify(value: unknown): string {
  try {
    // Without a replacer V8 takes its fast path; only a bigint makes it throw.
    return JSON.stringify(value);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
  }
  let hasBig = false;
  const text = JSON.stringify(value, (_key, v) => {
    if (typeof v !== "bigint") return v;
    hasBig = true;
    return `\u0000big:${v}`;
  });
  return hasBig ? text.replace(/"\\u0000big:(-?\d+)"/g, "$1") : text;
}
