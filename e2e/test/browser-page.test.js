// The browser example (examples/browser: the seed's page with tus-js-client
// from the CDN, pointed at tusproxy) in headless Chromium: as `tusproxy dev`
// serves it to a new user, reloaded mid-upload, and served from a second
// origin with CORS allowed and refused. Once done, the page shows the
// Kinescope video id it read from tusproxy's Kinescope-Video-Id header.
import assert from 'node:assert/strict';
import { MiB, randomData, writeFile } from '../lib/data.js';
import {
  gotoPage, launchBrowser, openPage, pageShows, reloadPage, screenshot, waitForPageOutcome,
} from '../lib/browser.js';
import { e2eTest, waitFor } from '../lib/harness.js';
import { browserExampleDir } from '../lib/paths.js';
import { startStatic } from '../lib/static.js';
import { startDev, startEmulator, startProxy } from '../lib/tusproxy.js';

/** Records the tus requests a page sends: method, URL, Upload-Offset. */
function recordRequests(page, filesURL) {
  const seen = [];
  page.on('request', (req) => {
    if (req.url().startsWith(filesURL)) {
      seen.push({ method: req.method(), url: req.url(), offset: req.headers()['upload-offset'] ?? null });
    }
  });
  return seen;
}

e2eTest('tusproxy dev: a new user opens the printed URL and uploads a file', {}, async (ctx) => {
  const dev = await startDev(ctx);
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);
  const data = randomData(6 * MiB + 12_345);

  await gotoPage(page, dev.pageURL);
  const before = await pageShows(page);
  assert.equal(before.state, 'idle');
  assert.equal(before.videoId, '', 'no video id before an upload');
  assert.equal(before.endpoint, dev.filesURL);
  assert.equal(before.error, '', 'tus-js-client loaded');
  await page.setInputFiles('#file-input', { name: 'holiday.mp4', mimeType: 'video/mp4', buffer: data });
  const shown = await waitForPageOutcome(page);
  await screenshot(page, 'dev-page-done');

  assert.equal(shown.state, 'done', `page shows ${JSON.stringify(shown)}`);
  assert.equal(shown.progress, 100);
  assert.equal(shown.percent, '100%');
  assert.match(shown.status, new RegExp(`^Done: holiday\\.mp4 uploaded \\(${dev.filesURL}[0-9a-f]+\\)\\.$`));
  assert.equal(shown.error, '');
  const video = await dev.emulator.assertStored(data);
  assert.equal(video.filename, 'holiday.mp4');
  assert.equal(shown.videoId, video.id, 'the page shows the id of the video the emulator holds');
  assert.equal(dev.emulator.initCount(), 1);
  assert.deepEqual(errors, []);
});

e2eTest('reload mid-upload, choose the same file again: it resumes from localStorage', {}, async (ctx) => {
  const dev = await startDev(ctx);
  // Every answer of the emulator comes 700 ms late: the page's 10 MB PATCHes
  // take seconds, and the reload lands in the middle of the upload.
  await dev.emulator.setFaults('latency=700ms');
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);
  const data = randomData(25_000_000);
  const file = await writeFile(ctx.tmpDir('files'), 'lecture.mp4', data);
  const requests = recordRequests(page, dev.filesURL);

  await gotoPage(page, dev.pageURL);
  await page.setInputFiles('#file-input', file);
  const firstChunk = await page.waitForResponse((res) =>
    res.request().method() === 'PATCH' && res.status() === 204, { timeout: 60_000 });
  const confirmed = Number(await firstChunk.headerValue('upload-offset'));
  assert.equal(confirmed, 10_000_000, 'the first 10 MB chunk was confirmed');
  // The second chunk is on its way; reload now.
  await waitFor('the second PATCH to be sent', () =>
    requests.some((r) => r.method === 'PATCH' && Number(r.offset) === confirmed));
  const beforeReload = await pageShows(page);
  assert.equal(beforeReload.state, 'uploading');
  await reloadPage(page);

  const reloaded = await pageShows(page);
  assert.equal(reloaded.state, 'idle');
  await page.waitForFunction(() => document.getElementById('status').textContent.includes('lecture.mp4'), null,
    { timeout: 10_000 });
  assert.match((await pageShows(page)).status, /Unfinished upload of lecture\.mp4: choose the same file again/);

  const sentBefore = requests.length;
  await page.setInputFiles('#file-input', file);
  const shown = await waitForPageOutcome(page);
  await screenshot(page, 'reload-resume-done');
  assert.equal(shown.state, 'done', `page shows ${JSON.stringify(shown)}`);
  assert.equal(shown.progress, 100);

  const after = requests.slice(sentBefore);
  assert.equal(after[0].method, 'HEAD', `resumed with HEAD: ${JSON.stringify(after)}`);
  assert.ok(!after.some((r) => r.method === 'POST'), 'no new upload was created after the reload');
  const firstPatch = after.find((r) => r.method === 'PATCH');
  assert.ok(Number(firstPatch.offset) >= confirmed,
    `the first PATCH after the reload starts at ${firstPatch.offset}, at least ${confirmed}`);
  assert.equal(new Set(requests.filter((r) => r.method !== 'POST').map((r) => r.url)).size, 1,
    'the same upload URL before and after the reload');
  assert.equal(requests.filter((r) => r.method === 'POST').length, 1);
  const video = await dev.emulator.assertStored(data);
  // The reloaded page never saw the creation: it learned the id from the
  // answers to its HEAD and PATCHes.
  assert.equal(shown.videoId, video.id);
  assert.equal(dev.emulator.initCount(), 1, 'only one init at the emulator');
  // removeFingerprintOnSuccess: nothing left to resume.
  assert.equal(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::')).length), 0);
  assert.deepEqual(errors, []);
});

e2eTest('page from a second origin: CORS preflight passes, Location is readable, upload completes', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const site = await startStatic(ctx, [browserExampleDir]);
  const proxy = await startProxy(ctx, emu, { TUSPROXY_CORS_ORIGINS: site.origin });
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);
  const data = randomData(5 * MiB + 1);
  const file = await writeFile(ctx.tmpDir('files'), 'cross-origin.mp4', data);

  await gotoPage(page, `${site.origin}/index.html?endpoint=${encodeURIComponent(proxy.filesURL)}`);
  assert.equal((await pageShows(page)).endpoint, proxy.filesURL);
  await page.setInputFiles('#file-input', file);
  const shown = await waitForPageOutcome(page);
  await screenshot(page, 'cross-origin-done');

  assert.equal(shown.state, 'done', `page shows ${JSON.stringify(shown)}`);
  // The page shows the upload URL, which it read from Location, and the
  // video id, which it could read only because tusproxy exposes the header.
  assert.match(shown.status, new RegExp(`\\(${proxy.filesURL}[0-9a-f]+\\)\\.$`));
  const logged = proxy.requests().map((l) => `${l.method} ${l.status}`);
  assert.ok(logged.includes('OPTIONS 204'), `a preflight was answered: ${logged}`);
  assert.ok(logged.includes('POST 201'), `the creation went through: ${logged}`);
  const video = await emu.assertStored(data);
  assert.equal(shown.videoId, video.id, 'the page read Kinescope-Video-Id across origins');
  assert.deepEqual(errors, []);
});

e2eTest('page from an origin tusproxy does not allow: refused, the page says so, no video', {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const site = await startStatic(ctx, [browserExampleDir]);
  const proxy = await startProxy(ctx, emu, { TUSPROXY_CORS_ORIGINS: 'https://app.example.com' });
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);
  const file = await writeFile(ctx.tmpDir('files'), 'refused.mp4', randomData(MiB));

  // The page retries for 38 s in all (its retryDelays); the clock skips them.
  await page.clock.install();
  await gotoPage(page, `${site.origin}/index.html?endpoint=${encodeURIComponent(proxy.filesURL)}`);
  await page.setInputFiles('#file-input', file);
  const notices = new Set();
  await waitFor('the page to give up', async () => {
    const now = await pageShows(page);
    if (now.state === 'error') {
      return true;
    }
    notices.add(now.error.replace(/\d+ s \(attempt \d+/, 'N s (attempt N'));
    await page.clock.fastForward(5_000);
    return false;
  }, { timeoutMs: 60_000, intervalMs: 100 });
  const shown = await pageShows(page);
  await screenshot(page, 'cross-origin-refused');

  assert.equal(shown.state, 'error');
  assert.equal(shown.videoId, '');
  assert.equal(shown.error, `Upload failed: no answer from ${proxy.filesURL}: the network failed, ` +
    `or this page's origin (${site.origin}) is not in tusproxy's TUSPROXY_CORS_ORIGINS.`);
  assert.notEqual(shown.progress, 100);
  assert.equal(await page.isDisabled('#resume'), false, 'the user may try again');
  // While it retried, the page said so.
  assert.ok(notices.has(`Problem: no answer from ${proxy.filesURL}: the network failed, or this page's origin ` +
    `(${site.origin}) is not in tusproxy's TUSPROXY_CORS_ORIGINS. Trying again in N s (attempt N of 5).`),
  `retry notices: ${JSON.stringify([...notices])}`);
  const logged = proxy.requests().map((l) => `${l.method} ${l.status}`);
  assert.ok(logged.includes('OPTIONS 403'), `tusproxy refused the preflight: ${logged}`);
  assert.ok(!logged.some((l) => l.startsWith('POST 2')), `no creation went through: ${logged}`);
  assert.deepEqual(await emu.videos(), []);
  assert.equal(emu.initCount(), 0);
  assert.deepEqual(errors, []);
});

e2eTest("the seed's flow from the page: POST /upload across origins, then straight to the emulator", {}, async (ctx) => {
  const emu = await startEmulator(ctx);
  const site = await startStatic(ctx, [browserExampleDir]);
  const proxy = await startProxy(ctx, emu, { TUSPROXY_CORS_ORIGINS: site.origin });
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);
  const data = randomData(15 * MiB + 1);
  const file = await writeFile(ctx.tmpDir('files'), 'seed-page.mp4', data);

  await gotoPage(page, `${site.origin}/index.html?endpoint=${encodeURIComponent(proxy.seedURL)}`);
  await page.setInputFiles('#file-input', file);
  const shown = await waitForPageOutcome(page);

  assert.equal(shown.state, 'done', `page shows ${JSON.stringify(shown)}`);
  const video = await emu.assertStored(data);
  // The page read Location (the endpoint Kinescope issued) and uploaded there.
  assert.equal(shown.status, `Done: seed-page.mp4 uploaded (${video.endpoint}).`);
  // Its last answer was Kinescope's: the id came from tusproxy's 201.
  assert.equal(shown.videoId, video.id);
  const logged = proxy.requests().map((l) => `${l.method} ${l.path} ${l.status}`);
  assert.deepEqual(logged.filter((l) => !l.startsWith('OPTIONS')), ['POST /upload 201']);
  assert.ok(logged.includes('OPTIONS /upload 204'), `the preflight was answered: ${logged}`);
  assert.deepEqual(errors, []);
});

e2eTest("a file over TUSPROXY_MAX_SIZE: the page shows tusproxy's own message", {}, async (ctx) => {
  const dev = await startDev(ctx, ['-max-size', '1MiB']);
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser);

  await gotoPage(page, dev.pageURL);
  await page.setInputFiles('#file-input', { name: 'too-big.mp4', mimeType: 'video/mp4', buffer: randomData(2 * MiB) });
  const shown = await waitForPageOutcome(page);
  await screenshot(page, 'too-large-refused');

  assert.equal(shown.state, 'error', `page shows ${JSON.stringify(shown)}`);
  assert.match(shown.error, /^Upload failed: .+ \(HTTP 413, upload_too_large\)$/);
  assert.equal(await page.isDisabled('#resume'), true, 'nothing to resume');
  assert.deepEqual(await dev.emulator.videos(), []);
  assert.equal(dev.emulator.initCount(), 0);
  assert.deepEqual(errors, []);
});
