// Bundles the Uppy fixture page (fixtures/uppy: @uppy/core, @uppy/dashboard,
// @uppy/tus) with esbuild into a directory a static server can serve.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { e2eDir } from './paths.js';

const fixtureDir = path.join(e2eDir, 'fixtures', 'uppy');

/** Builds the page into outDir: index.html, main.js, main.css. */
export async function buildUppyPage(outDir) {
  await build({
    entryPoints: [path.join(fixtureDir, 'main.js')],
    bundle: true,
    outdir: outDir,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: true,
    logLevel: 'warning',
  });
  fs.copyFileSync(path.join(fixtureDir, 'index.html'), path.join(outDir, 'index.html'));
  return outDir;
}
