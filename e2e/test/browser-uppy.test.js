// Uppy (@uppy/core + @uppy/dashboard + @uppy/tus, bundled with esbuild) in
// headless Chromium, served from another origin than tusproxy: add a file
// in the Dashboard, upload it, and check its bytes at the emulator.
import assert from 'node:assert/strict';
import { MiB, randomData, writeFile } from '../lib/data.js';
import { launchBrowser, openPage, screenshot } from '../lib/browser.js';
import { e2eTest } from '../lib/harness.js';
import { startStatic } from '../lib/static.js';
import { startEmulator, startProxy } from '../lib/tusproxy.js';
import { buildUppyPage } from '../lib/uppy.js';

e2eTest('Uppy Dashboard + Tus: add a file, upload, byte-exact', {}, async (ctx) => {
  const pageDir = await buildUppyPage(ctx.tmpDir('uppy-page'));
  const emu = await startEmulator(ctx);
  const site = await startStatic(ctx, [pageDir]);
  const proxy = await startProxy(ctx, emu, { TUSPROXY_CORS_ORIGINS: site.origin });
  const browser = await launchBrowser(ctx);
  const { page, errors } = await openPage(ctx, browser, 'uppy');
  const data = randomData(12 * MiB + 7);
  const file = await writeFile(ctx.tmpDir('files'), 'uppy-clip.mp4', data);

  await page.goto(`${site.origin}/index.html?endpoint=${encodeURIComponent(proxy.filesURL)}`);
  await page.setInputFiles('input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])', file);
  await page.getByRole('button', { name: /^Upload 1 file/ }).click();
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null,
    { timeout: 90_000, polling: 100 });
  await page.waitForSelector('.uppy-StatusBar.is-complete', { timeout: 10_000 });
  await screenshot(page, 'uppy-done');

  const state = await page.evaluate(() => ({ ...document.body.dataset, result: document.getElementById('result').textContent }));
  assert.equal(state.state, 'done', `page shows ${JSON.stringify(state)}`);
  assert.ok(state.uploadUrl.startsWith(proxy.filesURL), `Uppy's upload URL ${state.uploadUrl} is tusproxy's`);
  const video = await emu.assertStored(data);
  assert.equal(video.filename, 'uppy-clip.mp4');
  assert.equal(state.videoId, video.id, "upload-success's response names the video (Kinescope-Video-Id)");
  assert.equal(emu.initCount(), 1);
  const logged = proxy.requests().map((l) => `${l.method} ${l.status}`);
  assert.ok(logged.includes('OPTIONS 204'), `CORS preflights were answered by tusproxy: ${logged}`);
  assert.deepEqual(errors, []);
});
