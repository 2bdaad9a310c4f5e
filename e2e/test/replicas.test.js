// Scale-out with a real tus client: tus-js-client 4 in Node uploading
// through three `tusproxy serve` replicas that share one Redis, behind a
// round-robin balancer without sticky sessions (lib/balancer.js: the
// requests of one upload take the replicas in turn). A replica SIGKILLed
// mid-PATCH, and Redis restarted under running uploads. Every upload is
// checked byte for byte at the emulator, and for exactly one creation.
import assert from 'node:assert/strict';
import { MiB, randomData } from '../lib/data.js';
import { startBalancer } from '../lib/balancer.js';
import { e2eTest, waitFor } from '../lib/harness.js';
import { startRedis } from '../lib/redis.js';
import { fastRetries, newUpload } from '../lib/tusnode.js';
import { startEmulator, startProxy } from '../lib/tusproxy.js';

const methods = (log) => log.requests.map((r) => r.method);
const uploadIdOf = (url) => new URL(url).pathname.split('/').pop();

/** The status /readyz of a replica answers (0: no answer). */
async function readyz(node) {
  try {
    const res = await fetch(`${node.adminURL}/readyz`);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

/** Waits until every replica's /readyz answers status. */
function allReadyz(nodes, status) {
  return waitFor(`/readyz of every replica to answer ${status}`,
    async () => (await Promise.all(nodes.map(readyz))).every((s) => s === status),
    { timeoutMs: 30_000, intervalMs: 50 });
}

/**
 * An emulator, a Redis of the test's own (AOF, fsync always), a balancer,
 * and replicas r0, r1, r2: `tusproxy serve` on that Redis with a 2 s lock
 * lease, the balancer's URL as public URL, and an admin listener each. A
 * replica joins the rotation once its /readyz says so, as behind a health
 * check.
 */
async function startCluster(ctx, { replicas = 3, env = {}, faults } = {}) {
  const emu = await startEmulator(ctx, { faults });
  const redis = await startRedis(ctx);
  const lb = await startBalancer(ctx);
  const nodes = await Promise.all(Array.from({ length: replicas }, async (_, i) => {
    const proxy = await startProxy(ctx, emu, {
      TUSPROXY_STORE: redis.url,
      TUSPROXY_LOCK_LEASE: '2s',
      TUSPROXY_PUBLIC_URL: lb.url,
      TUSPROXY_METRICS_LISTEN: '127.0.0.1:0',
      ...env,
    });
    const name = `r${i}`;
    proxy.proc.name = `tusproxy ${name}`;
    const listening = proxy.proc.jsonLogs().find((l) => l.msg === 'tusproxy listening');
    return { ...proxy, name, adminURL: `http://${listening.admin_addr}` };
  }));
  await allReadyz(nodes, 200);
  for (const node of nodes) {
    lb.add(node.name, node.url);
  }
  return { emu, redis, lb, nodes, filesURL: `${lb.url}/files/` };
}

/** Asserts that every request of an upload after its creation went to its one URL. */
function assertOneUpload(u, what) {
  const m = methods(u.log);
  assert.equal(m[0], 'POST', `${what}: created first`);
  assert.equal(m.filter((x) => x === 'POST').length, 1, `${what}: exactly one creation (${m.join(' ')})`);
  for (const r of u.log.requests.slice(1)) {
    assert.equal(r.url, u.upload.url, `${what}: every request after the creation goes to its upload URL`);
  }
}

/** Compact view of exchanges for assertion messages. */
const show = (xs) => xs.map((x) => `${x.method} ${x.path} @${x.backend}: ${x.status}${x.byBalancer ? ' (balancer)' : ''}${x.error ? ` ${x.error}` : ''}`);

e2eTest('three replicas on one Redis, round-robin without sticky sessions: 10 uploads in 1 MB chunks, each served by all three', { timeout: 60_000 }, async (ctx) => {
  const c = await startCluster(ctx);
  const chunk = 1_000_000;
  const files = Array.from({ length: 10 }, (_, i) => ({
    name: `replicas-${i}.mp4`,
    data: randomData(3_000_001 + i * 333_333), // 3.0 to 6.0 MB: 4 to 7 PATCHes
  }));

  const uploads = await Promise.all(files.map(async (f) => {
    const u = newUpload(f.data, {
      endpoint: c.filesURL,
      chunkSize: chunk,
      retryDelays: fastRetries,
      metadata: { filename: f.name },
    });
    await u.start();
    return u;
  }));

  // Nothing failed on the way: every answer came from tusproxy, and was a
  // success (the retries above are a safety net that must not be needed).
  const failed = c.lb.exchanges.filter((x) => x.byBalancer || x.status === null || x.status >= 300);
  assert.deepEqual(show(failed), [], 'no request failed');

  const videos = await c.emu.videos();
  assert.equal(videos.length, files.length, 'one video per upload');
  for (const [i, f] of files.entries()) {
    const u = uploads[i];
    assert.ok(u.upload.url.startsWith(c.filesURL), `upload URL ${u.upload.url} is on the balancer`);
    assertOneUpload(u, f.name);
    const patches = Math.ceil(f.data.length / chunk);
    assert.deepEqual(methods(u.log), ['POST', ...Array(patches).fill('PATCH')], `${f.name}: one creation, then PATCHes`);

    // Each replica served this upload: the balancer says it sent them
    // there, and each replica's own log has a successful request of it.
    const id = uploadIdOf(u.upload.url);
    assert.deepEqual([...c.lb.servedBy(id)].sort(), ['r0', 'r1', 'r2'], `${f.name}: served by every replica`);
    for (const node of c.nodes) {
      const served = node.requests().filter((l) => l.path === `/files/${id}` && l.status < 300);
      assert.ok(served.length >= 1, `${node.name}'s log has a request of ${f.name}`);
    }
    await c.emu.assertStored(f.data, { filename: f.name, videos });
  }
  assert.equal(c.emu.initCount(), files.length, 'exactly one init per upload');
});

e2eTest('a replica SIGKILLed while it streams a PATCH: tus-js-client resumes through the other two on the same URL', { timeout: 60_000 }, async (ctx, t) => {
  // 256 KiB upstream PATCHes, each answered after 40 ms: a 4 MiB client
  // PATCH streams for well over half a second.
  const c = await startCluster(ctx, { env: { TUSPROXY_UPSTREAM_CHUNK_SIZE: '256KiB' }, faults: 'latency=40ms' });
  const data = randomData(12 * MiB);
  const u = newUpload(data, {
    endpoint: c.filesURL,
    chunkSize: 4 * MiB,
    retryDelays: fastRetries,
    metadata: { filename: 'killed-replica.mp4' },
  });
  u.start();

  // The second chunk's PATCH streaming through some replica, with a part of
  // it (and not most) already at the emulator.
  const inFlight = await Promise.race([
    waitFor('the second PATCH streaming, part of it at the emulator', async () => {
      if (!u.upload.url) {
        return null;
      }
      const x = c.lb.of(uploadIdOf(u.upload.url))
        .find((e) => e.method === 'PATCH' && e.offset === String(4 * MiB) && e.status === null);
      if (!x) {
        return null;
      }
      const [video] = await c.emu.videos();
      return video.offset > 4 * MiB + 256 * 1024 && video.offset < 7 * MiB ? { x, kept: video.offset } : null;
    }, { timeoutMs: 30_000, intervalMs: 20 }),
    u.done.then(() => { throw new Error('the upload completed before a replica could be killed'); }),
  ]);
  const victim = c.nodes.find((n) => n.name === inFlight.x.backend);
  // Out of rotation first, as a health check would take it out, so no new
  // request meets the dead replica; then the kill.
  c.lb.remove(victim.name);
  victim.proc.child.kill('SIGKILL');
  const killedAt = Date.now();
  await u.done;
  const doneAt = Date.now();
  assert.equal((await victim.proc.exited).signal, 'SIGKILL');

  // The PATCH in flight died with its replica: the balancer answered it.
  assert.equal(inFlight.x.byBalancer, true, `the in-flight PATCH was cut: ${show([inFlight.x])}`);
  assert.deepEqual(show(c.lb.exchanges.filter((x) => x.byBalancer)), show([inFlight.x]),
    'the balancer answered only that PATCH itself');
  const after = c.lb.exchanges.filter((x) => x.started >= killedAt);
  assert.ok(after.length > 0 && after.every((x) => x.backend !== victim.name), 'nothing went to the dead replica');
  assert.equal(new Set(after.map((x) => x.backend)).size, 2, 'both other replicas served the rest');

  // Resumed on the same URL with no second creation: a HEAD first, which
  // answered what the dead replica had passed on to Kinescope (at least what
  // the emulator held before the kill, more than the 4 MiB confirmed), then
  // PATCHes from there.
  assertOneUpload(u, 'the upload');
  const head = after.find((x) => x.method === 'HEAD' && x.status === 200);
  assert.ok(head, `a successful HEAD after the kill: ${show(after)}`);
  assert.ok(Number(head.answerOffset) >= inFlight.kept,
    `HEAD after the kill answers ${head.answerOffset}, at least the ${inFlight.kept} bytes at the emulator before it`);
  const firstPatch = after.find((x) => x.method === 'PATCH');
  assert.ok(firstPatch.seq > head.seq, 'the first PATCH after the kill follows the HEAD');
  assert.equal(firstPatch.offset, head.answerOffset, 'the first PATCH after the kill starts where HEAD said');
  const head5xx = c.lb.exchanges.filter((x) => x.method === 'HEAD' && x.status >= 500 && !x.byBalancer);
  assert.deepEqual(show(head5xx), [], 'tusproxy never answered HEAD with a 5xx');

  await c.emu.assertStored(data);
  assert.equal(c.emu.initCount(), 1, 'exactly one init');
  const locked = after.filter((x) => x.status === 423).length;
  t.diagnostic(`killed ${victim.name} at ${inFlight.kept} bytes at the emulator; HEAD ${head.status} at offset ` +
    `${head.answerOffset} ${head.ended - killedAt} ms after the kill (lock lease 2s; ${locked} answers 423 before), ` +
    `first PATCH after it answered ${firstPatch.ended - killedAt} ms after the kill, upload complete after ${doneAt - killedAt} ms`);
});

e2eTest('Redis restarted while uploads run: all complete byte-exact, one creation each, HEAD never a 5xx', { timeout: 60_000 }, async (ctx, t) => {
  // Slow enough upstream that the uploads are mid-way when Redis stops:
  // half send 1 MB chunks, half one PATCH that streams through the outage.
  const c = await startCluster(ctx, { env: { TUSPROXY_UPSTREAM_CHUNK_SIZE: '256KiB' }, faults: 'latency=30ms' });
  const files = Array.from({ length: 6 }, (_, i) => ({
    name: `redis-restart-${i}.mp4`,
    chunkSize: i % 2 === 0 ? 1_000_000 : Infinity,
    data: randomData(i % 2 === 0 ? 6_000_000 + i * 200_000 : 12_000_000 + i * 200_000),
  }));
  let started = 0;
  let allStarted;
  const everyOneStarted = new Promise((resolve) => { allStarted = resolve; });
  const uploads = files.map((f) => {
    let counted = false;
    const begun = () => {
      if (!counted) {
        counted = true;
        if (++started === files.length) {
          allStarted();
        }
      }
    };
    const u = newUpload(f.data, {
      endpoint: c.filesURL,
      chunkSize: f.chunkSize,
      // Long enough to outlast the restart: each attempt that makes no
      // progress uses one delay.
      retryDelays: [...fastRetries, 5000, 5000, 5000],
      metadata: { filename: f.name },
      onChunkComplete: begun,
      onProgress: (sent) => { if (f.chunkSize === Infinity && sent >= MiB) begun(); },
    });
    u.start();
    u.done.then(() => { u.finished = true; });
    return u;
  });
  const allDone = Promise.all(uploads.map((u) => u.done));
  await Promise.race([everyOneStarted, allDone.then(() => {
    throw new Error('the uploads completed before Redis could be stopped');
  })]);

  // Every upload is created and under way (a chunk through, or 1 MiB of its
  // one PATCH sent): stop Redis under them.
  const stoppedAt = Date.now();
  await c.redis.stop();
  const acceptedAtStop = uploads.map((u) => (u.finished ? 'done' : u.log.accepted.at(-1) ?? 0));
  assert.ok(uploads.some((u) => !u.finished), 'some upload was mid-way when Redis stopped');
  await allReadyz(c.nodes, 503);
  // The clients meet the outage: tusproxy answers HEAD 423 (never a 5xx),
  // which tus-js-client retries.
  await waitFor('tusproxy to answer a HEAD with 423 while Redis is down', () => c.lb.exchanges.some(
    (x) => x.started >= stoppedAt && x.method === 'HEAD' && x.status === 423 && !x.byBalancer), { timeoutMs: 30_000 });
  const restartedAt = Date.now();
  await c.redis.start();
  await allDone;
  const doneAt = Date.now();
  await allReadyz(c.nodes, 200);

  // No record was lost: a lost one would have answered HEAD 404 and made
  // tus-js-client create a second upload.
  const videos = await c.emu.videos();
  assert.equal(videos.length, files.length, 'one video per upload');
  for (const [i, f] of files.entries()) {
    assertOneUpload(uploads[i], f.name);
    await c.emu.assertStored(f.data, { filename: f.name, videos });
  }
  assert.equal(c.emu.initCount(), files.length, 'exactly one init per upload');
  const head5xx = c.lb.exchanges.filter((x) => x.method === 'HEAD' && x.status >= 500);
  assert.deepEqual(show(head5xx), [], 'HEAD was never answered with a 5xx');
  assert.deepEqual(show(c.lb.exchanges.filter((x) => x.byBalancer)), [], 'every answer came from tusproxy');
  const refused = c.lb.exchanges.filter((x) => x.status === 503 || x.status === 423);
  assert.deepEqual(show(refused.filter((x) => !x.retryAfter)), [], 'every 503 and 423 carries Retry-After');
  const count = (method, status) => refused.filter((x) => x.method === method && x.status === status).length;
  t.diagnostic(`Redis down for ${restartedAt - stoppedAt} ms (offsets at the stop: ${acceptedAtStop.join(', ')}); ` +
    `tusproxy answered HEAD 423 ×${count('HEAD', 423)}, PATCH 503 ×${count('PATCH', 503)}, PATCH 423 ×${count('PATCH', 423)}; ` +
    `all uploads complete ${doneAt - restartedAt} ms after Redis started again`);
});
