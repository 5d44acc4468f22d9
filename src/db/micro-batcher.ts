/**
 * Gathers concurrent submissions into batches: a batch closes when it holds `maxSize` items or
 * `windowMs` after its first item arrived, whichever comes first, and is handed to `run`.
 * `run` answers one settlement per item, in order; a throw from `run` fails every item of
 * that batch. At most `concurrency` batches run at once; items arriving meanwhile queue up
 * and form the next batches, so under load batches grow instead of piling up.
 */
export class MicroBatcher<Item, Result> {
  private pending: { item: Item; resolve: (r: Result) => void; reject: (e: unknown) => void }[] =
    [];
  private timer: NodeJS.Timeout | undefined;
  private running = 0;

  constructor(
    private readonly run: (items: Item[]) => Promise<PromiseSettledResult<Result>[]>,
    private readonly options: { maxSize: number; windowMs: number; concurrency: number },
  ) {}

  submit(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      if (this.pending.length >= this.options.maxSize) this.flush();
      else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.options.windowMs);
    });
  }

  private flush() {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.pending.length > 0 && this.running < this.options.concurrency) {
      const batch = this.pending.splice(0, this.options.maxSize);
      this.running++;
      this.execute(batch).finally(() => {
        this.running--;
        if (this.pending.length > 0 && !this.timer) this.flush();
      });
    }
  }

  private async execute(batch: typeof this.pending) {
    try {
      const results = await this.run(batch.map((b) => b.item));
      batch.forEach((b, i) => {
        const r = results[i];
        if (!r) b.reject(new Error("batch returned fewer results than items"));
        else if (r.status === "fulfilled") b.resolve(r.value);
        else b.reject(r.reason);
      });
    } catch (error) {
      for (const b of batch) b.reject(error);
    }
  }
}
