// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core;
// no browser is ever downloaded). Pages load tus-js-client from its CDN URL,
// answered here from node_modules: the tests have no internet.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { artifactsDir, tusCdnUrl, tusMinJs } from './paths.js';

export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Launches Chromium for one test; it is closed when the test ends. */
export async function launchBrowser(ctx) {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} is missing: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  ctx.defer(() => browser.close());
  return browser;
}

function serveTusFromNodeModules(route) {
  return route.fulfill({ path: tusMinJs, contentType: 'text/javascript; charset=utf-8' });
}

/**
 * Runs a navigation (goto, reload) with tus-js-client's CDN URL answered
 * from node_modules, and stops routing once the page has loaded. Not a
 * moment longer: while any route is set, Playwright answers every CORS
 * preflight itself with "allow everything", so tusproxy's CORS would go
 * untested.
 */
export async function withCdn(page, navigate) {
  await page.route(tusCdnUrl, serveTusFromNodeModules);
  try {
    return await navigate();
  } finally {
    await page.unroute(tusCdnUrl, serveTusFromNodeModules);
  }
}

/** Opens url in page, tus-js-client served as from its CDN. */
export function gotoPage(page, url) {
  return withCdn(page, () => page.goto(url, { waitUntil: 'load' }));
}

/** Reloads page, tus-js-client served as from its CDN. */
export function reloadPage(page) {
  return withCdn(page, () => page.reload({ waitUntil: 'load' }));
}

/**
 * Opens a page in a fresh browser context (its own localStorage). Console
 * messages and page errors go to the test's failure report; errors also to
 * the returned list, which a test can assert is empty. Navigate with
 * gotoPage and reloadPage.
 */
export async function openPage(ctx, browser, name = 'page') {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (msg) => ctx.note(`${name} console.${msg.type()}`, msg.text()));
  page.on('pageerror', (err) => {
    errors.push(err);
    ctx.note(`${name} page error`, err.stack || String(err));
  });
  page.on('requestfailed', (req) => ctx.note(`${name} request failed`,
    `${req.method()} ${req.url()}: ${req.failure()?.errorText}`));
  return { context, page, errors };
}

/** Saves a screenshot of the page as a CI artifact: artifacts/screenshots/NAME.png. */
export async function screenshot(page, name) {
  const file = path.join(artifactsDir, 'screenshots', `${name}.png`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Waits until the example page leaves the uploading state, and returns what
 * it shows: state (done, error, ...), status, error, progress, percent,
 * videoId.
 */
export async function waitForPageOutcome(page, timeout = 90_000) {
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null,
    { timeout, polling: 100 });
  return pageShows(page);
}

/** What the example page shows now. */
export function pageShows(page) {
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    status: document.getElementById('status').textContent,
    error: document.getElementById('error').textContent,
    progress: document.getElementById('progress').value,
    percent: document.getElementById('percent').textContent,
    endpoint: document.getElementById('endpoint').textContent,
    // The Kinescope video id the page shows once done ('' while hidden).
    videoId: document.getElementById('video').hidden ? '' : document.getElementById('video-id').textContent,
  }));
}
