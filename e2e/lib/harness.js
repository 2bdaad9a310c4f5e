// e2eTest: a node:test test with its own processes, temporary directory and
// clean-ups. Whatever happens, every process it started is stopped at the
// end; when it fails, the output of those processes is printed and written
// under artifacts/logs/ for CI to keep.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { artifactsDir } from './paths.js';
import { Proc } from './procs.js';

/** What one test has started, to be undone at its end. */
export class TestContext {
  constructor(name) {
    this.name = name;
    this.slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'tusproxy-e2e-'));
    this.procs = [];
    this.cleanups = [];
    this.notes = []; // lines from elsewhere: browser consoles, page errors
  }

  /** Keeps a line (a browser console message, ...) for the failure report. */
  note(source, line) {
    this.notes.push(`[${new Date().toISOString()}] ${source}: ${line}`);
  }

  /** A new directory under the test's temporary directory. */
  tmpDir(name) {
    const dir = fs.mkdtempSync(path.join(this.root, `${name}-`));
    return dir;
  }

  /**
   * Starts the tusproxy binary with args and extra environment (or
   * options.bin, another program).
   */
  spawn(name, args, env, options) {
    const proc = new Proc(name, args, env, options);
    this.procs.push(proc);
    return proc;
  }

  /** Runs fn at the end of the test, before the processes are stopped. */
  defer(fn) {
    this.cleanups.push(fn);
  }

  async close() {
    const errors = [];
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    await Promise.all(this.procs.map((p) => p.stop()));
    fs.rmSync(this.root, { recursive: true, force: true });
    if (errors.length > 0) {
      throw errors[0];
    }
  }

  /** Prints the output of every process and saves it as an artifact. */
  reportFailure(err) {
    const notes = this.notes.length > 0 ? `===== other output\n${this.notes.join('\n')}\n` : '';
    const report = this.procs.map((p) => p.report()).join('\n') + notes;
    const file = path.join(artifactsDir, 'logs', `${this.slug}.log`);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `${err?.stack || err}\n\n${report}`);
    } catch {
      // The report below still says it all.
    }
    // The end of each log is what explains a failure; the whole is in file.
    const tail = (s) => (s.length > 20_000 ? '[...]' + s.slice(-20_000) : s);
    console.error(`\n##### test "${this.name}" failed: output of its processes (all of it in ${file})\n` +
      this.procs.map((p) => tail(p.report())).join('\n') + tail(notes));
  }
}

/**
 * Declares a test whose body gets a TestContext. timeout (ms) fails the test
 * if it has not finished by then, and still stops its processes.
 */
export function e2eTest(name, { timeout = 120_000, ...options } = {}, fn) {
  return test(name, { ...options, timeout: timeout + 30_000 }, async (t) => {
    const ctx = new TestContext(name);
    let timer;
    try {
      await Promise.race([
        fn(ctx, t),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test timed out after ${timeout} ms`)), timeout);
        }),
      ]);
    } catch (err) {
      ctx.reportFailure(err);
      throw err;
    } finally {
      clearTimeout(timer);
      await ctx.close();
    }
  });
}

/**
 * Resolves once check() returns a truthy value (which it resolves with);
 * rejects with what() after timeoutMs. For conditions nothing announces,
 * such as a log line or a record at the emulator.
 */
export async function waitFor(what, check, { timeoutMs = 30_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
