// tus-js-client 4 in Node against `tusproxy serve` and `tusproxy emulator`,
// each its own process on loopback. Every upload is checked byte for byte at
// the emulator (SHA-256 of what it stored against Node's own hash).
import assert from 'node:assert/strict';
import path from 'node:path';
import { MiB, KiB, randomData } from '../lib/data.js';
import { e2eTest, waitFor } from '../lib/harness.js';
import { fastRetries, newUpload, tus, uploadAll } from '../lib/tusnode.js';
import { startEmulator, startProxy } from '../lib/tusproxy.js';

const methods = (log) => log.requests.map((r) => r.method);

e2eTest('one PATCH: a 40 MiB file with chunkSize left at Infinity', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(40 * MiB);

  const { upload, log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    metadata: { filename: 'whole.mp4', filetype: 'video/mp4', title: 'The whole file' },
  });

  assert.deepEqual(methods(log), ['POST', 'PATCH']);
  assert.equal(log.responses[0].status, 201);
  assert.equal(log.requests[1].offset, '0');
  assert.equal(log.responses[1].status, 204);
  assert.equal(log.responses[1].offset, String(data.length));
  // The client only ever sees tusproxy's URL, never Kinescope's endpoint.
  assert.ok(upload.url.startsWith(proxy.filesURL), `upload URL ${upload.url} is under ${proxy.filesURL}`);
  assert.ok(!upload.url.includes(new URL(emu.url).host), 'the upload URL does not name the emulator');

  const video = await emu.assertStored(data);
  assert.equal(video.filename, 'whole.mp4');
  assert.equal(video.title, 'The whole file');
  assert.equal(video.parent_id, 'e2e-project');
  assert.equal(emu.initCount(), 1);
});

e2eTest('1 MB chunks: a 12.3 MB file in 13 PATCHes at the right offsets', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const chunk = 1_000_000; // not a multiple of anything tusproxy uses upstream
  const data = randomData(12_345_678);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    chunkSize: chunk,
    metadata: { filename: 'chunked.mp4' },
  });

  const patches = log.responses.filter((r) => r.method === 'PATCH');
  assert.equal(patches.length, 13);
  patches.forEach((p, i) => {
    assert.equal(p.status, 204);
    assert.equal(p.offset, String(Math.min((i + 1) * chunk, data.length)), `offset after PATCH ${i}`);
  });
  assert.deepEqual(patches.map((p) => Number(p.offset)), log.accepted);
  await emu.assertStored(data);
  assert.equal(emu.initCount(), 1);
});

/** The highest offset the server has confirmed to the client. */
function confirmedOffset(log) {
  return Math.max(0, ...log.responses.filter((r) => r.status < 300 && r.offset !== null).map((r) => Number(r.offset)));
}

/**
 * Uploads data until about 40% of it was sent, aborts, and uploads it again
 * with a new tus.Upload that finds the first one in a FileUrlStorage.
 * Checks the resume (same URL, HEAD first, no creation, one init,
 * byte-exact) and returns the offsets: sentBeforeAbort (what the client had
 * sent), confirmed (what the server had confirmed) and resumedAt (the
 * Upload-Offset of the first PATCH after the resume).
 */
async function abortAt40AndResume(ctx, { size, chunkSize, faults, proxyEnv }) {
  const emu = await startEmulator(ctx, { faults });
  const proxy = await startProxy(ctx, emu, proxyEnv);
  const data = randomData(size);
  const urlStorage = new tus.FileUrlStorage(path.join(ctx.tmpDir('url-storage'), 'tus-uploads.json'));
  const options = {
    endpoint: proxy.filesURL,
    chunkSize,
    urlStorage,
    retryDelays: fastRetries,
    metadata: { filename: 'resumed.mp4' },
  };

  let aborted;
  const abortedAt = new Promise((resolve) => { aborted = resolve; });
  const first = newUpload(data, {
    ...options,
    onProgress(sent, total) {
      // Past 40% and in the middle of a PATCH: past what was confirmed.
      if (sent >= 0.4 * total && sent > confirmedOffset(first.log)) {
        first.upload.abort();
        aborted(sent);
      }
    },
  });
  const sentBeforeAbort = await Promise.race([abortedAt, first.start().then(() => {
    throw new Error('the first upload completed before it could be aborted');
  })]);
  const confirmed = confirmedOffset(first.log);
  assert.ok(sentBeforeAbort < data.length, 'aborted before the end');
  assert.ok(confirmed < data.length, 'aborted before the last chunk was confirmed');

  const second = newUpload(data, options);
  const previous = await second.upload.findPreviousUploads();
  assert.equal(previous.length, 1, 'the first upload is in the URL storage');
  assert.equal(previous[0].uploadUrl, first.upload.url);
  second.upload.resumeFromPreviousUpload(previous[0]);
  await second.start();

  // Resumed: a HEAD to the same URL, then PATCHes from its offset; no
  // creation, so no second Kinescope video.
  assert.equal(second.upload.url, first.upload.url);
  assert.equal(second.log.requests[0].method, 'HEAD');
  assert.ok(!methods(second.log).includes('POST'), `no creation after resume: ${methods(second.log)}`);
  for (const r of second.log.requests) {
    assert.equal(r.url, first.upload.url, 'every request after resume goes to the first upload URL');
  }
  const head = second.log.responses[0];
  assert.equal(head.status, 200);
  const resumedAt = Number(second.log.requests.find((r) => r.method === 'PATCH').offset);
  assert.equal(resumedAt, Number(head.offset), 'the first PATCH starts where HEAD said');
  assert.ok(resumedAt >= confirmed, `resumed at ${resumedAt}, at least the ${confirmed} bytes confirmed before the abort`);
  assert.ok(resumedAt <= sentBeforeAbort, `resumed at ${resumedAt}, no further than the ${sentBeforeAbort} bytes sent`);
  // HEAD told Kinescope's true offset: no PATCH was refused.
  assert.deepEqual(second.log.responses.filter((r) => r.status >= 300).map((r) => r.status), []);

  await emu.assertStored(data);
  assert.equal(emu.initCount(), 1, 'the emulator saw exactly one init');
  return { confirmed, resumedAt, sentBeforeAbort };
}

e2eTest('abort at 40% with 1 MiB chunks, resume from FileUrlStorage on the same URL', {}, async (ctx, t) => {
  const { confirmed, resumedAt, sentBeforeAbort } = await abortAt40AndResume(ctx, { size: 32 * MiB, chunkSize: MiB });
  t.diagnostic(`sent ${sentBeforeAbort}, confirmed ${confirmed}, resumed at ${resumedAt}`);
  assert.ok(confirmed >= 12 * MiB, `chunks of the first 40% were confirmed (${confirmed})`);
  assert.ok(resumedAt > 0);
});

e2eTest('abort at 40% of a single PATCH, resume from the bytes tusproxy kept', {}, async (ctx, t) => {
  // tus-js-client reports a PATCH's progress at most every 100 ms: 1 MiB
  // upstream PATCHes answered after 30 ms each make the one PATCH last long
  // enough to be aborted midway. What the client counts as sent includes
  // what sits in socket buffers (a few MiB): 40% of 48 MiB is well past it.
  const { resumedAt, sentBeforeAbort } = await abortAt40AndResume(ctx, {
    size: 48 * MiB,
    chunkSize: Infinity,
    faults: 'latency=30ms',
    proxyEnv: { TUSPROXY_UPSTREAM_CHUNK_SIZE: '1MiB' },
  });
  t.diagnostic(`sent ${sentBeforeAbort}, resumed at ${resumedAt}`);
  // Nothing was confirmed to the client, but the bytes that reached
  // Kinescope before the abort are kept and not sent again.
  assert.ok(resumedAt > 0, `resumed at ${resumedAt} of ${sentBeforeAbort} sent, not from 0`);
});

e2eTest('emulator cuts every 3rd PATCH and fails every 5th request: 1 MB chunks complete with retries', {}, async (ctx) => {
  const emu = await startEmulator(ctx, {
    faults: 'cut-patch-every=3,cut-patch-after=256KiB,fail-every=5,fail-status=503',
  });
  const proxy = await startProxy(ctx, emu);
  const data = randomData(10_000_000);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    chunkSize: 1_000_000,
    retryDelays: fastRetries,
    metadata: { filename: 'faults-chunked.mp4' },
  });

  await emu.assertStored(data);
  // The faults did happen, and the client saw them as errors it retried.
  assert.ok(emu.logCount('kinescopetest: PATCH cut (fault)') >= 1, 'the emulator cut PATCHes');
  assert.ok(emu.logCount('kinescopetest: tus request failed (fault)') >= 1, 'the emulator failed requests');
  assert.ok(log.responses.some((r) => r.method === 'PATCH' && r.status >= 500), 'the client got PATCH failures');
  assert.ok(methods(log).includes('HEAD'), 'the client resumed with HEAD');
  // tusproxy never answers HEAD with a 5xx, which would make tus-js-client
  // create a second video.
  assert.deepEqual(log.responses.filter((r) => r.method === 'HEAD' && r.status !== 200), []);
  assert.equal(methods(log).filter((m) => m === 'POST').length, 1);
  assert.equal(emu.initCount(), 1, 'no second init');
});

e2eTest('faults switched at run time: one 24 MiB PATCH, cut and failed upstream, completes with retries', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  // Small upstream chunks: the one client PATCH becomes many upstream ones.
  const proxy = await startProxy(ctx, emu, { TUSPROXY_UPSTREAM_CHUNK_SIZE: '2MiB' });
  const faults = await emu.setFaults('cut-patch-every=3,cut-patch-after=700KiB,fail-every=4,fail-status=503');
  assert.equal(faults, `cut-patch-every=3,cut-patch-after=${700 * KiB},fail-every=4,fail-status=503`);
  const data = randomData(24 * MiB);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    retryDelays: fastRetries,
    metadata: { filename: 'faults-whole.mp4' },
  });

  await emu.assertStored(data);
  assert.ok(emu.logCount('kinescopetest: PATCH cut (fault)') >= 1, 'the emulator cut PATCHes');
  assert.ok(emu.logCount('kinescopetest: tus request failed (fault)') >= 1, 'the emulator failed requests');
  assert.ok(methods(log).filter((m) => m === 'PATCH').length > 1, 'the client had to send more than one PATCH');
  assert.deepEqual(log.responses.filter((r) => r.method === 'HEAD' && r.status !== 200), []);
  assert.equal(emu.initCount(), 1, 'no second init');
});

e2eTest('20 uploads in parallel, all byte-exact', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const files = Array.from({ length: 20 }, (_, i) => ({
    name: `parallel-${String(i).padStart(2, '0')}.mp4`,
    data: randomData(MiB + i * 150_001),
    // Half send one PATCH, half many.
    chunkSize: i % 2 === 0 ? Infinity : 700_000,
  }));

  const uploads = await Promise.all(files.map((f) => uploadAll(f.data, {
    endpoint: proxy.filesURL,
    chunkSize: f.chunkSize,
    metadata: { filename: f.name },
  })));

  const urls = new Set(uploads.map((u) => u.upload.url));
  assert.equal(urls.size, 20, 'every upload has its own URL');
  const videos = await emu.videos();
  assert.equal(videos.length, 20);
  for (const f of files) {
    await emu.assertStored(f.data, { filename: f.name, videos });
  }
  assert.equal(emu.initCount(), 20);
});

e2eTest('uploadDataDuringCreation: the whole file in the creation POST', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(8 * MiB + 3);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    uploadDataDuringCreation: true,
    metadata: { filename: 'creation-with-upload.mp4' },
  });

  assert.deepEqual(methods(log), ['POST']);
  assert.equal(log.responses[0].status, 201);
  assert.equal(log.responses[0].offset, String(data.length));
  await emu.assertStored(data);
});

e2eTest('uploadDataDuringCreation with 3 MB chunks: first chunk in the POST, then PATCHes', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(10_000_000);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    uploadDataDuringCreation: true,
    chunkSize: 3_000_000,
    metadata: { filename: 'creation-then-patch.mp4' },
  });

  assert.deepEqual(methods(log), ['POST', 'PATCH', 'PATCH', 'PATCH']);
  assert.deepEqual(log.responses.map((r) => r.offset), ['3000000', '6000000', '9000000', '10000000']);
  await emu.assertStored(data);
});

e2eTest('overridePatchMethod: chunks sent as POST with X-HTTP-Method-Override: PATCH', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(7_000_001);

  const { log } = await uploadAll(data, {
    endpoint: proxy.filesURL,
    overridePatchMethod: true,
    chunkSize: 2_000_000,
    metadata: { filename: 'override.mp4' },
  });

  const chunks = log.requests.slice(1);
  assert.equal(chunks.length, 4);
  for (const r of chunks) {
    assert.equal(r.rawMethod, 'POST');
    assert.equal(r.override, 'PATCH');
  }
  assert.deepEqual(log.responses.slice(1).map((r) => [r.status, r.offset]),
    [[204, '2000000'], [204, '4000000'], [204, '6000000'], [204, '7000001']]);
  await emu.assertStored(data);
});

e2eTest('parallelUploads: 2 gets a clear 400 concatenation_unsupported and creates no video', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(4 * MiB);

  const u = newUpload(data, {
    endpoint: proxy.filesURL,
    parallelUploads: 2,
    retryDelays: fastRetries,
    metadata: { filename: 'parallel-parts.mp4' },
  });
  const err = await u.start().then(() => assert.fail('the upload should have failed'), (e) => e);

  assert.ok(err instanceof tus.DetailedError, `a DetailedError: ${err}`);
  assert.equal(err.originalResponse.getStatus(), 400);
  assert.match(err.message, /response code: 400/);
  const body = JSON.parse(err.originalResponse.getBody());
  assert.equal(body.error.code, 'concatenation_unsupported');
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  assert.equal(err.originalRequest.getHeader('Upload-Concat'), 'partial');

  // Every creation the client sent has been answered by tusproxy, and none
  // reached Kinescope.
  const sent = u.log.requests.filter((r) => r.method === 'POST').length;
  assert.ok(sent >= 1);
  const answered = await waitFor(`tusproxy to log ${sent} POST requests`, () => {
    const posts = proxy.requests().filter((l) => l.method === 'POST');
    return posts.length === sent ? posts : null;
  });
  assert.deepEqual(answered.map((l) => l.status), Array(sent).fill(400));
  assert.deepEqual(await emu.videos(), []);
  assert.equal(emu.initCount(), 0);
});

e2eTest('uploadLengthDeferred gets a clear 400 defer_length_unsupported and creates no video', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);

  const err = await newUpload(randomData(MiB), {
    endpoint: proxy.filesURL,
    uploadLengthDeferred: true,
    chunkSize: 256 * KiB,
    retryDelays: fastRetries,
  }).start().then(() => assert.fail('the upload should have failed'), (e) => e);

  assert.equal(err.originalResponse?.getStatus(), 400, `a 400 answer: ${err}`);
  assert.equal(JSON.parse(err.originalResponse.getBody()).error.code, 'defer_length_unsupported');
  assert.equal(err.originalRequest.getHeader('Upload-Defer-Length'), '1');
  assert.deepEqual(await emu.videos(), []);
  assert.equal(emu.initCount(), 0);
});

e2eTest("the seed's flow: POST /upload answers the emulator's endpoint, the client uploads straight to it", {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(9_500_000);

  const { upload, log } = await uploadAll(data, {
    endpoint: proxy.seedURL,
    chunkSize: 4_000_000,
    metadata: { filename: 'seed-flow.mp4', filetype: 'video/mp4' },
  });

  assert.equal(log.responses[0].method, 'POST');
  assert.equal(log.responses[0].url, proxy.seedURL);
  assert.equal(log.responses[0].status, 201);
  const video = await emu.assertStored(data);
  assert.equal(video.filename, 'seed-flow.mp4');
  // Location is the endpoint Kinescope issued, and the bytes went there.
  assert.equal(log.responses[0].location, video.endpoint);
  assert.equal(upload.url, video.endpoint);
  assert.deepEqual(methods(log), ['POST', 'PATCH', 'PATCH', 'PATCH']);
  for (const r of log.requests.slice(1)) {
    assert.equal(r.url, video.endpoint);
  }
  // tusproxy saw only the POST.
  assert.deepEqual(proxy.requests().map((l) => `${l.method} ${l.path} ${l.status}`), ['POST /upload 201']);
  assert.equal(emu.initCount(), 1);
});

e2eTest('abort(true) terminates: DELETE reaches Kinescope, and the upload URL is gone', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const proxy = await startProxy(ctx, emu);
  const data = randomData(8 * MiB);

  let halfway;
  const reached = new Promise((resolve) => { halfway = resolve; });
  const u = newUpload(data, {
    endpoint: proxy.filesURL,
    chunkSize: MiB,
    metadata: { filename: 'terminated.mp4' },
    onChunkComplete: (size, accepted) => { if (accepted >= 4 * MiB) halfway(); },
  });
  u.start();
  await reached;
  await u.upload.abort(true);

  const deletes = u.log.responses.filter((r) => r.method === 'DELETE');
  assert.deepEqual(deletes.map((r) => [r.url, r.status]), [[u.upload.url, 204]]);
  const [video] = await emu.videos();
  assert.equal(video.terminated, true, 'the Kinescope upload was terminated');
  const head = await fetch(u.upload.url, { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
  assert.equal(head.status, 404);
  assert.equal(head.headers.get('upload-offset'), null);
});

e2eTest('tusproxy killed (SIGKILL) mid-upload and restarted: the client resumes by itself', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const env = { TUSPROXY_STORE: `bolt:${ctx.tmpDir('store')}/tusproxy.db` };
  const proxy = await startProxy(ctx, emu, env);
  const data = randomData(24 * MiB);

  let killed = false;
  let restarted;
  const u = newUpload(data, {
    endpoint: proxy.filesURL,
    chunkSize: MiB,
    retryDelays: fastRetries,
    metadata: { filename: 'restart.mp4' },
    onProgress(sent, total) {
      if (!killed && sent > 0.3 * total) {
        killed = true;
        proxy.proc.child.kill('SIGKILL');
        // The same address and bbolt file, as a supervisor would restart it.
        restarted = proxy.proc.exited.then(() => startProxy(ctx, emu, {
          ...env,
          TUSPROXY_LISTEN: new URL(proxy.url).host,
        }));
        // Awaited below; if the upload fails first, that is the error to see.
        restarted.catch(() => {});
      }
    },
  });
  await u.start();
  const second = await restarted;

  assert.equal(proxy.proc.exit.signal, 'SIGKILL');
  assert.equal(second.url, proxy.url);
  assert.ok(u.upload.url.startsWith(proxy.filesURL));
  assert.equal(methods(u.log).filter((m) => m === 'POST').length, 1, 'no second creation');
  // The new process served the rest: HEAD first, then PATCHes from its offset.
  const served = second.requests().map((l) => l.method);
  assert.equal(served[0], 'HEAD', `the restarted tusproxy was asked HEAD first: ${served}`);
  assert.ok(served.includes('PATCH'));
  await emu.assertStored(data);
  assert.equal(emu.initCount(), 1, 'one init');
});
