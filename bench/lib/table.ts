export interface Column {
  title: string;
  align: "left" | "right";
}

/** A plain-text table: `|`-separated, padded, with a rule under the header. */
export function formatTable(columns: Column[], rows: string[][]): string {
  const widths = columns.map((column, i) =>
    Math.max(column.title.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: string[]) =>
    columns
      .map((column, i) => {
        const cell = cells[i] ?? "";
        return column.align === "left" ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!);
      })
      .join(" | ");
  const rule = widths.map((w) => "-".repeat(w)).join("-|-");
  return [line(columns.map((c) => c.title)), rule, ...rows.map(line)].join("\n");
}

export const fixed = (value: number | undefined, digits = 0): string =>
  value === undefined || !Number.isFinite(value)
    ? "-"
    : value.toLocaleString("en-US", {
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      });

export const ratio = (value: number | undefined, of: number | undefined): string =>
  value === undefined || of === undefined || of === 0 ? "-" : `${(value / of).toFixed(2)}×`;
