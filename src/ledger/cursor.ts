/** Opaque page cursors: the base64url of the last row's position, checked when decoded. */
const PREFIX = "c1:";

export function encodeCursor(position: number | string): string {
  return Buffer.from(`${PREFIX}${position}`).toString("base64url");
}

/** The position a cursor names, or undefined when the string is not one of ours. */
export function decodeCursor(cursor: string): string | undefined {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) return undefined;
  const text = Buffer.from(cursor, "base64url").toString();
  return text.startsWith(PREFIX) ? text.slice(PREFIX.length) : undefined;
}

export function decodeNumericCursor(cursor: string): number | undefined {
  const value = decodeCursor(cursor);
  if (value === undefined || !/^[1-9][0-9]{0,15}$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : undefined;
}
