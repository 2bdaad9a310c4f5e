// Builds the tusproxy binary the tests run: `npm test` runs this first
// (the "pretest" script), so every run tests the code in this checkout.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoDir, tusproxyBin } from './paths.js';

function findGo() {
  if (process.env.GO) {
    return process.env.GO;
  }
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const candidate = path.join(dir, 'go');
    if (dir && fs.existsSync(candidate)) {
      return candidate;
    }
  }
  // Where the official tarball installs it, which is not always on PATH.
  return '/usr/local/go/bin/go';
}

if (process.env.TUSPROXY_E2E_BIN) {
  console.log(`e2e: using TUSPROXY_E2E_BIN=${process.env.TUSPROXY_E2E_BIN}, not building`);
} else {
  fs.mkdirSync(path.dirname(tusproxyBin), { recursive: true });
  const started = Date.now();
  execFileSync(findGo(), ['build', '-o', tusproxyBin, './cmd/tusproxy'], { cwd: repoDir, stdio: 'inherit' });
  console.log(`e2e: built ${path.relative(process.cwd(), tusproxyBin)} in ${Date.now() - started} ms`);
}
