/**
 * Items with their original positions, sorted by the key of the row each one locks (stable
 * for equal keys). Transactions that lock rows in this order cannot deadlock on each other.
 */
export function inLockOrder<T>(items: T[], key: (item: T) => string): { item: T; index: number }[] {
  return items
    .map((item, index) => ({ item, index }))
    .sort((a, b) => {
      const ka = key(a.item);
      const kb = key(b.item);
      return ka < kb ? -1 : ka > kb ? 1 : a.index - b.index;
    });
}
