/**
 * cluster: a node:cluster HTTP server whose worker processes answer GET /lookup?key=K from a
 * lookup table in a shared domain. The primary creates the domain and the table; each worker
 * opens the domain, attaches the table read-only and answers from a Map it decoded from it. While
 * a load of keep-alive requests runs, the primary replaces the table with newer versions and
 * removes each old one: the workers' notifiers drop their caches in invalidateStart, and remove()
 * waits for that, so no answer sent after a removal comes from the removed table.
 * Run with `npm run example:cluster` (WORKERS=<n> processes, REPLACE=<n> replacements,
 * REQUESTS=<n> answers per version, KEYS=<n> keys in the table).
 */
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter, once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Domain, type Attachment, type Segment } from '../src/index.js';
import { decode, fill, tableBytes, valueFor, type Table } from './lookup-table.js';

const WORKERS = Number(process.env.WORKERS ?? 2);
const REPLACE = Number(process.env.REPLACE ?? 5);
const REQUESTS = Number(process.env.REQUESTS ?? 500);
const KEYS = Number(process.env.KEYS ?? 10_000);
const CONCURRENCY = 8;

/** What the primary tells a worker: the table to answer from, or to stop. */
type ToWorker = { table: number; version: number } | { stop: true };
/** What a worker tells the primary: it joined, it knows table `ack`, or (stopped) its counts. */
type ToPrimary = { ready: true } | { ack: number } | { drops: number; rebuilds: number };
/** One answer of GET /lookup. */
type Answer = { version: number; key: number; value: number; worker: number };

if (cluster.isPrimary) await primary();
else await worker();

async function primary(): Promise<void> {
  const t0 = performance.now();
  // 1. A shared domain: its memory is a /dev/shm file that the workers map too.
  const name = `cluster-${process.pid}`;
  const domain = await Domain.create({ shared: name, arenaBytes: 1 << 20, maxArenaBytes: 16 << 20 });
  try {
    /** Makes table `version`, filled, read-only for the workers. */
    const makeTable = (version: number): Segment => {
      const seg = domain.space.make(tableBytes(KEYS), { name: `table v${version}`, permit: 'ro' });
      const att = seg.attach();
      att.write(Uint32Array, (view) => fill(view, version, KEYS));
      att.detach();
      return seg;
    };
    // A worker that exits unasked or a failed request ends the run: every wait below races
    // `failure`, and the finally block stops the workers and closes the domain.
    let fail: (error: unknown) => void = () => {};
    const failure = new Promise<never>((_, reject) => (fail = reject));
    failure.catch(() => {}); // not unhandled while no wait races it
    const guard = <T>(wait: Promise<T>): Promise<T> => Promise.race([wait, failure]);
    cluster.on('exit', (w, code) => {
      if (!w.exitedAfterDisconnect) fail(new Error(`worker #${w.id} exited with code ${code} before it was stopped`));
    });

    let table = makeTable(1);
    let version = 1;

    /** Publishes the current table to worker `w`; resolves once it knows it (its ack). */
    const publish = async (w: Worker): Promise<void> => {
      w.send({ table: table.id, version } satisfies ToWorker);
      await once(w, 'message');
    };

    // 2. The workers: each joins the domain (its ready), learns the table and listens; they
    //    share one port (listen(0) in a cluster gives every worker the same one).
    const workers: Worker[] = [];
    const ports = await guard(
      Promise.all(
        Array.from({ length: WORKERS }, async () => {
          const w = cluster.fork({ CLUSTER_DOMAIN: name });
          workers.push(w);
          const listening = once(w, 'listening');
          await once(w, 'message');
          await publish(w);
          const [address] = (await listening) as [AddressInfo];
          return address.port;
        }),
      ),
    );
    const port = ports[0]!;

    // 3. The load: CONCURRENCY clients on keep-alive connections; each checks its answer against
    //    the version it names, and that the version was not removed before the request was sent.
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const lookup = (key: number): Promise<Answer> =>
      new Promise((resolve, reject) => {
        http
          .get({ host: '127.0.0.1', port, path: `/lookup?key=${key}`, agent }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (body += chunk));
            res.on('end', () => resolve(JSON.parse(body) as Answer));
          })
          .on('error', reject);
      });
    const progress = new EventEmitter();
    let answers = 0;
    let wrong = 0;
    let stale = 0;
    let oldest = 1; // every older table has been removed: an answer from one is stale
    let stopped = false;
    const perVersion = new Map<number, number>();
    const perWorker = new Map<number, number>();
    const client = async (first: number): Promise<void> => {
      for (let i = first; !stopped; i += CONCURRENCY) {
        const key = (i * 7919) % KEYS;
        const floor = oldest;
        const a = await lookup(key);
        if (a.key !== key || a.value !== valueFor(a.version, key)) wrong++;
        if (a.version < floor) stale++;
        perVersion.set(a.version, (perVersion.get(a.version) ?? 0) + 1);
        perWorker.set(a.worker, (perWorker.get(a.worker) ?? 0) + 1);
        answers++;
        progress.emit('answer');
      }
    };
    /** Resolves once `n` answers came in. */
    const answered = (n: number): Promise<void> =>
      new Promise((resolve) => {
        const on = (): void => {
          if (answers < n) return;
          progress.off('answer', on);
          resolve();
        };
        progress.on('answer', on);
        on();
      });
    const load = Promise.all(Array.from({ length: CONCURRENCY }, (_, k) => client(k)));
    load.catch(fail);

    // 4. The replacements, REQUESTS answers apart: make the next table, publish it to every
    //    worker (each acks), then remove the old one. remove() runs the workers' invalidateStart
    //    (they drop their caches) and resolves after every one of them returned.
    let removeMs = 0;
    for (let r = 1; r <= REPLACE; r++) {
      await guard(answered(r * REQUESTS));
      const old = table;
      table = makeTable(++version);
      await guard(Promise.all(workers.map(publish)));
      const began = performance.now();
      await guard(old.remove());
      removeMs += performance.now() - began;
      oldest = version;
    }
    await guard(answered((REPLACE + 1) * REQUESTS));
    stopped = true;
    await guard(load);
    agent.destroy();

    // 5. Shutdown: each worker stops serving, leaves the domain and reports; then it disconnects
    //    and exits. The primary reaps the spaces of the processes that left, and checks.
    const reports = await guard(
      Promise.all(
        workers.map(async (w) => {
          const exit = once(w, 'exit');
          w.send({ stop: true } satisfies ToWorker);
          const [report] = (await once(w, 'message')) as [{ drops: number; rebuilds: number }];
          w.disconnect();
          const [code] = (await exit) as [number];
          return { ...report, code };
        }),
      ),
    );
    await domain.settled();
    const check = domain.check();

    const seen = [...perVersion.keys()].sort((a, b) => a - b);
    const sum = (key: 'drops' | 'rebuilds'): number => reports.reduce((n, r) => n + r[key], 0);
    console.log(`cluster: ${WORKERS} worker processes answered GET /lookup from a ${KEYS}-key table in shared domain '${name}', replaced ${REPLACE} times under load`);
    console.log(`  answers per version: ${seen.map((v) => `v${v} ${perVersion.get(v)}`).join(', ')}`);
    console.log(`  answers per worker: ${[...perWorker].map(([id, n]) => `#${id} ${n}`).join(', ')}`);
    console.log(`  the workers dropped their caches ${sum('drops')} times in invalidateStart and rebuilt them ${sum('rebuilds')} times`);
    console.log(`  remove() took ${(removeMs / Math.max(REPLACE, 1)).toFixed(1)} ms on average (it waits for every worker's invalidateStart); ${stale} answers came from a removed table`);
    console.log(`  workers exited with ${reports.map((r) => r.code).join(', ')}; ran ${(performance.now() - t0).toFixed(0)} ms`);
    console.log(`cluster: ${answers} answers, ${wrong} wrong, ${stale} stale, versions seen: ${seen[0]}..${seen.at(-1)}`);
    console.log(`domain.check(): ${check.ok ? 'consistent' : `BROKEN ${JSON.stringify(check.errors)}`}`);
    if (wrong > 0 || stale > 0 || !check.ok || reports.some((r) => r.code !== 0)) process.exitCode = 1;
  } finally {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill(); // only when the run failed
    await domain.close();
  }
  console.log(`domain closed: /dev/shm/xpmem-threads.${name} ${existsSync(`/dev/shm/xpmem-threads.${name}`) ? 'is still there' : 'is gone'}`);
}

async function worker(): Promise<void> {
  // 1. Join the domain the primary created.
  const domain = await Domain.open(process.env.CLUSTER_DOMAIN!);
  let latest = -1; // the id of the newest table the primary published
  let att: Attachment | undefined;
  let cache: Table | undefined;
  let drops = 0;
  let rebuilds = 0;

  /**
   * 2. The cache: a Map decoded from the table, rebuilt by the first request after a drop. The
   *    primary publishes a new table (and waits for this worker's ack) before it removes the old
   *    one, so a rebuild attaches the newest table and never meets a removed one (ERR_XPMEM_REMOVED).
   */
  const current = (): Table => {
    if (cache !== undefined) return cache;
    if (att?.segId !== latest) {
      att?.detach(); // the old table, removed (or being removed) by now
      att = domain.space.attach(latest, 'ro');
      att.notifier({
        invalidateStart: () => {
          cache = undefined; // the table is going away: never answer from it again
          drops++;
        },
      });
    }
    cache = att.read(Uint32Array, decode);
    rebuilds++;
    return cache;
  };

  // 3. The server: every answer comes from the cache.
  const server = http.createServer((req, res) => {
    const key = Number(new URL(req.url ?? '/', 'http://localhost').searchParams.get('key'));
    const table = current();
    const value = table.values.get(key);
    if (value === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ version: table.version, key, value, worker: cluster.worker!.id } satisfies Answer));
  });

  process.on('message', (m: ToWorker) => {
    if ('table' in m) {
      latest = m.table;
      process.send!({ ack: m.version } satisfies ToPrimary);
      if (!server.listening) server.listen(0, '127.0.0.1');
      return;
    }
    // 4. Stop: close the server (the load has ended), detach, leave the domain, report.
    server.close(() => {
      att?.detach();
      void domain.close().then(() => process.send!({ drops, rebuilds } satisfies ToPrimary));
    });
  });
  process.send!({ ready: true } satisfies ToPrimary);
}
