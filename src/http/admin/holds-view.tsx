import { raw } from "hono/html";
import type { Hold } from "../../reservations/hold.ts";
import { type HoldOutcomes, NO_REASON } from "../../reservations/hold-outcomes.ts";
import type { HoldStats } from "../../reservations/hold-stats.ts";
import type { HoldSearch } from "../../reservations/search-holds.ts";

export interface HoldsPageProps {
  stats: HoldStats;
  outcomes: HoldOutcomes;
  oldest: Hold[];
  /** The paused queues that stop expiry; undefined when Redis could not say. */
  paused: string[] | undefined;
  search: { query: HoldSearch; holds: Hold[] } | undefined;
  /** Whether holds get fulfil jobs (FULFILMENT_URL); otherwise only expire jobs. */
  fulfilment: boolean;
  dashboardPath: string;
  now: number;
  nonce: string | undefined;
}

const CSS = `
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1b1f24; background: #fff; }
header, main { padding: 0 1.5rem; max-width: 72rem; }
header { display: flex; gap: 1.5rem; align-items: baseline; border-bottom: 1px solid #d0d7de; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
a { color: #0550ae; }
.alert { background: #ffebe9; border: 2px solid #a40e26; color: #5c0011; padding: .75rem 1rem; margin: 1rem 0; }
.notice { background: #fff8c5; border: 1px solid #7d4e00; padding: .75rem 1rem; margin: 1rem 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; padding: 0; margin: 1rem 0; }
.figures div { border: 1px solid #d0d7de; padding: .5rem 1rem; min-width: 9rem; }
.figures dt { font-size: .85rem; color: #424a53; }
.figures dd { margin: 0; font-size: 1.5rem; font-variant-numeric: tabular-nums; }
.figures .bad dd { color: #a40e26; font-weight: 600; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; padding: .3rem .8rem .3rem 0; border-bottom: 1px solid #d0d7de; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td:last-child { white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
code { font-size: .85rem; }
form { display: flex; gap: 1rem; align-items: end; flex-wrap: wrap; }
label { display: flex; flex-direction: column; font-size: .85rem; color: #424a53; }
input { font: inherit; padding: .3rem; border: 1px solid #6e7781; }
button { font: inherit; padding: .35rem 1rem; }
.overdue { color: #a40e26; font-weight: 600; }
`;

/** "45s", "12m 3s", "5h 2m", "3d 4h": how long an operator has been waiting on a hold. */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function Deadline({ hold, now }: { hold: Hold; now: number }) {
  const left = Date.parse(hold.expiresAt) - now;
  if (hold.status !== "pending") return <>{hold.expiresAt}</>;
  return left > 0 ? (
    <>in {duration(left)}</>
  ) : (
    <span class="overdue">overdue by {duration(-left)}</span>
  );
}

function JobLinks(props: { hold: Hold; fulfilment: boolean; dashboardPath: string }) {
  const link = (queue: string, kind: string) => (
    <a
      href={`${props.dashboardPath}/queue/${queue}/${kind}-${props.hold.id}`}
      aria-label={`${kind} job of hold ${props.hold.id}`}
    >
      {kind} job
    </a>
  );
  return props.fulfilment ? (
    <>
      {link("holds-fulfil", "fulfil")} · {link("holds-expire", "expire")}
    </>
  ) : (
    link("holds-expire", "expire")
  );
}

function Figures({ stats }: { stats: HoldStats }) {
  const figures: [string, string, boolean][] = [
    ["Pending holds", String(stats.pending), false],
    ["Coins held", stats.coinsHeld.toString(), false],
    ["Overdue", String(stats.overdue), stats.overdue > 0],
    ["Expiring within 5 min", String(stats.expiringIn5m), false],
    ["Expiring within 60 min", String(stats.expiringIn60m), false],
  ];
  return (
    <dl class="figures">
      {figures.map(([label, value, bad]) => (
        <div class={bad ? "bad" : undefined}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}

function Outcomes({ outcomes }: { outcomes: HoldOutcomes }) {
  const { lastHour: hour, lastDay: day } = outcomes;
  const reasons = Object.keys(day.releasedByReason).sort();
  const rows: [string, number, number][] = [
    ["settled", hour.settled, day.settled],
    ...reasons.map((r): [string, number, number] => [
      `released: ${r === NO_REASON ? "no reason given" : r}`,
      hour.releasedByReason[r] ?? 0,
      day.releasedByReason[r] ?? 0,
    ]),
    ["expired", hour.expired, day.expired],
  ];
  return (
    <table id="outcomes">
      <caption>How holds ended</caption>
      <thead>
        <tr>
          <th scope="col">outcome</th>
          <th scope="col" class="n">
            last hour
          </th>
          <th scope="col" class="n">
            last day
          </th>
        </tr>
      </thead>
      <tbody>
        {rows.map(([label, h, d]) => (
          <tr>
            <th scope="row">{label}</th>
            <td class="n">{h}</td>
            <td class="n">{d}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function HoldTable(props: {
  id: string;
  caption: string;
  holds: Hold[];
  now: number;
  fulfilment: boolean;
  dashboardPath: string;
  withStatus: boolean;
}) {
  return (
    <table id={props.id}>
      <caption>{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">hold</th>
          <th scope="col">account</th>
          <th scope="col" class="n">
            amount
          </th>
          <th scope="col">order</th>
          {props.withStatus ? <th scope="col">status</th> : null}
          <th scope="col">age</th>
          <th scope="col">deadline</th>
          <th scope="col">jobs</th>
        </tr>
      </thead>
      <tbody>
        {props.holds.map((hold) => (
          <tr>
            <td>
              <code>{hold.id}</code>
            </td>
            <td>{hold.accountId}</td>
            <td class="n">{hold.amount}</td>
            <td>{hold.orderId ?? "—"}</td>
            {props.withStatus ? (
              <td>
                {hold.status}
                {hold.reason && hold.status !== "expired" ? ` (${hold.reason})` : ""}
              </td>
            ) : null}
            <td>{duration(props.now - Date.parse(hold.createdAt))}</td>
            <td>
              <Deadline hold={hold} now={props.now} />
            </td>
            <td>
              <JobLinks
                hold={hold}
                fulfilment={props.fulfilment}
                dashboardPath={props.dashboardPath}
              />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Search(props: HoldsPageProps) {
  const query = props.search?.query;
  const account = query && "accountId" in query ? query.accountId : "";
  const order = query && "orderId" in query ? query.orderId : "";
  return (
    <section aria-labelledby="search-title">
      <h2 id="search-title">Search</h2>
      <form method="get" action="/admin/holds">
        <label>
          Account id
          <input name="account" value={account} maxlength={64} autocomplete="off" />
        </label>
        <label>
          Order id
          <input name="order" value={order} maxlength={255} autocomplete="off" />
        </label>
        <button type="submit">Search</button>
      </form>
      {props.search ? (
        props.search.holds.length === 0 ? (
          <p id="search-results">
            No holds for {account ? `account ${account}` : `order ${order}`}.
          </p>
        ) : (
          <HoldTable
            id="search-results"
            caption={`Holds of ${account ? `account ${account}` : `order ${order}`}, newest first`}
            holds={props.search.holds}
            now={props.now}
            fulfilment={props.fulfilment}
            dashboardPath={props.dashboardPath}
            withStatus={true}
          />
        )
      ) : null}
    </section>
  );
}

/** The holds panel: what Postgres says about the holds, for an operator on call. */
export function HoldsPage(props: HoldsPageProps) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex" />
        {/* An empty icon: without one the browser asks for /favicon.ico, a 404 in the console. */}
        <link rel="icon" href="data:," />
        <title>holdfast · holds</title>
        <style nonce={props.nonce}>{raw(CSS)}</style>
      </head>
      <body>
        <header>
          <h1>holdfast · holds</h1>
          <nav aria-label="admin">
            <a href={props.dashboardPath}>Queues dashboard</a>
          </nav>
        </header>
        <main>
          {props.paused === undefined ? (
            <p class="notice" role="status">
              Redis did not answer: whether expiry is paused is unknown.
            </p>
          ) : props.paused.length > 0 ? (
            <p class="alert" role="alert" id="paused-banner">
              Expiry is paused: {props.paused.join(", ")}. Pending holds will not expire until the
              queue is resumed (the ops dashboard, with HOLDFAST_OPS_TOKEN).
            </p>
          ) : null}
          <section aria-labelledby="now-title">
            <h2 id="now-title">Pending now</h2>
            <Figures stats={props.stats} />
          </section>
          <section aria-labelledby="outcomes-title">
            <h2 id="outcomes-title">Outcomes</h2>
            <Outcomes outcomes={props.outcomes} />
          </section>
          <Search {...props} />
          <section aria-labelledby="oldest-title">
            <h2 id="oldest-title">Oldest pending holds</h2>
            {props.oldest.length === 0 ? (
              <p>No pending holds.</p>
            ) : (
              <HoldTable
                id="oldest"
                caption={`The ${props.oldest.length} oldest pending holds, oldest first`}
                holds={props.oldest}
                now={props.now}
                fulfilment={props.fulfilment}
                dashboardPath={props.dashboardPath}
                withStatus={false}
              />
            )}
          </section>
        </main>
      </body>
    </html>
  );
}
