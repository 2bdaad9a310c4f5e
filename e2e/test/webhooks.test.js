// Lifecycle webhooks, verified by an implementation nobody here wrote: the
// `standardwebhooks` npm package checks every delivery's signature while
// tus-js-client uploads through tusproxy with emulator faults on, and an
// auth hook gives each upload an owner and an application context.
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { KiB, MiB, randomData } from '../lib/data.js';
import { e2eTest, waitFor } from '../lib/harness.js';
import { fastRetries, uploadAll } from '../lib/tusnode.js';
import { startEmulator, startProxy } from '../lib/tusproxy.js';

/** Starts an HTTP server on a free loopback port; handler(req, body, res). */
async function listen(ctx, handler) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks), res));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  ctx.defer(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${server.address().port}`;
}

/**
 * A webhook receiver that verifies each delivery with standardwebhooks and
 * keeps the verified payloads. The first `failFirst` deliveries are answered
 * 503, so tusproxy's retries are exercised too.
 */
async function startReceiver(ctx, secret, { failFirst = 0 } = {}) {
  const verifier = new Webhook(secret);
  const received = { verified: [], refused: [], attempts: 0 };
  const url = await listen(ctx, (req, body, res) => {
    received.attempts++;
    if (received.attempts <= failFirst) {
      res.writeHead(503, { 'Retry-After': '0' }).end();
      return;
    }
    try {
      // verify throws unless the signature of the raw body and the
      // timestamp check out; it returns the parsed payload.
      const payload = verifier.verify(body.toString('utf8'), {
        'webhook-id': req.headers['webhook-id'],
        'webhook-timestamp': req.headers['webhook-timestamp'],
        'webhook-signature': req.headers['webhook-signature'],
      });
      received.verified.push({ id: req.headers['webhook-id'], payload });
      res.writeHead(204).end();
    } catch (err) {
      received.refused.push(String(err));
      res.writeHead(400).end();
    }
  });
  return { url, received };
}

/** An auth hook that allows everything and tags each upload with a context. */
async function startAuthHook(ctx) {
  return listen(ctx, (req, body, res) => {
    const asked = JSON.parse(body.toString('utf8'));
    const answer = { owner: 'user-7' };
    if (asked.operation === 'create') {
      answer.context = { order: asked.upload.metadata.filename, tenant: 'acme' };
    }
    res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer));
  });
}

e2eTest('webhooks: created and completed for every upload, verified by standardwebhooks, with faults on', { timeout: 180_000 }, async (ctx) => {
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const emu = await startEmulator(ctx, { faults: 'cut-patch-every=3,fail-every=5' });
  const receiver = await startReceiver(ctx, secret, { failFirst: 2 });
  const hook = await startAuthHook(ctx);
  const proxy = await startProxy(ctx, emu, {
    TUSPROXY_AUTH: 'required',
    TUSPROXY_AUTH_HOOK_URL: hook,
    TUSPROXY_WEBHOOK_URL: receiver.url,
    TUSPROXY_WEBHOOK_SECRET: secret,
  });

  const files = ['a.mp4', 'b.mp4', 'c.mp4'].map((name, i) => ({ name, data: randomData(3 * MiB + i * 100 * KiB) }));
  const videoIDs = new Map();
  await Promise.all(files.map(async (f) => {
    const { upload, log } = await uploadAll(f.data, {
      endpoint: proxy.filesURL,
      chunkSize: MiB,
      retryDelays: fastRetries,
      metadata: { filename: f.name },
    });
    const created = log.responses.find((r) => r.method === 'POST');
    assert.equal(created.status, 201);
    videoIDs.set(f.name, { url: upload.url });
  }));
  for (const f of files) {
    const video = await emu.assertStored(f.data, { filename: f.name });
    videoIDs.get(f.name).video = video.id;
  }

  // Every upload's created and completed arrive, verified, in that order.
  const events = await waitFor('upload.created and upload.completed of every upload', () => {
    const byFile = new Map();
    for (const { payload } of receiver.received.verified) {
      const name = payload.data.context?.order;
      if (!byFile.has(name)) byFile.set(name, []);
      byFile.get(name).push(payload);
    }
    const complete = files.every((f) => (byFile.get(f.name) ?? []).some((p) => p.type === 'upload.completed'));
    return complete ? byFile : null;
  }, { timeoutMs: 60_000 });
  assert.deepEqual(receiver.received.refused, [], 'every delivery verifies');
  for (const f of files) {
    const want = videoIDs.get(f.name);
    const list = events.get(f.name);
    assert.deepEqual(list.map((p) => p.type), ['upload.created', 'upload.completed'], `events of ${f.name}`);
    for (const p of list) {
      assert.equal(p.data.video_id, want.video, `video_id of ${f.name}'s ${p.type}`);
      assert.equal(p.data.upload_url, want.url, `upload_url of ${f.name}'s ${p.type}`);
      assert.equal(p.data.owner, 'user-7');
      assert.deepEqual(p.data.context, { order: f.name, tenant: 'acme' });
      assert.equal(p.data.length, f.data.length);
      assert.equal(p.data.metadata.filename, f.name);
    }
    assert.equal(list[1].data.offset, f.data.length);
    assert.ok(list[1].data.completed_at, 'completed_at is set');
  }
  // Each event id is delivered (verified) once here: the 503s were retried,
  // and no event was given up or duplicated on a healthy receiver.
  const ids = receiver.received.verified.map((v) => v.id);
  assert.equal(new Set(ids).size, ids.length, 'no event verified twice');
  assert.ok(receiver.received.attempts > ids.length, 'the first deliveries were refused and retried');
});
