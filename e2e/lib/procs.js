// Child processes of a test: tusproxy serve, tusproxy emulator and tusproxy
// dev, each started on a free port (port 0, the address parsed from its
// output), its stdout and stderr kept for the failure report, and stopped at
// the end of the test, or killed if the test runner itself goes away. Other
// programs a test needs (redis-server) run the same way, with options.bin.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { tusproxyBin } from './paths.js';

// Processes still running; killed if this test process exits first, so a
// crashed or interrupted run leaves nothing behind.
const running = new Set();
process.on('exit', () => {
  for (const proc of running) {
    try {
      proc.child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

// Logs are kept whole up to this size per stream, then only their end.
const maxLogBytes = 8 << 20;

// cleanEnv is the parent's environment without any tusproxy or Kinescope
// setting, so an operator's shell cannot change what a test runs.
function cleanEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TUSPROXY_') && !key.startsWith('KINESCOPE_')) {
      env[key] = value;
    }
  }
  return { ...env, ...extra };
}

/**
 * A running tusproxy process with its output. options.bin runs another
 * program instead (same environment rules, output and clean-up).
 */
export class Proc {
  constructor(name, args, env, { bin = tusproxyBin } = {}) {
    this.name = name;
    this.args = args;
    this.bin = bin;
    this.stdout = '';
    this.stderr = '';
    this.watchers = [];
    this.exit = null; // {code, signal} once exited
    this.child = spawn(bin, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this);
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        running.delete(this);
        this.exit = { code, signal };
        for (const w of this.watchers.splice(0)) {
          w.reject(new Error(`${this.name} exited (code ${code}, signal ${signal}) before printing ${w.what}`));
        }
        resolve(this.exit);
      });
    });
    this.child.on('error', (err) => {
      for (const w of this.watchers.splice(0)) {
        w.reject(new Error(`${this.name} could not start (${bin}): ${err.message}`));
      }
    });
    for (const stream of ['stdout', 'stderr']) {
      let partial = '';
      this.child[stream].setEncoding('utf8');
      this.child[stream].on('data', (text) => {
        this.append(stream, text);
        const lines = (partial + text).split('\n');
        partial = lines.pop();
        for (const line of lines) {
          this.onLine(stream, line);
        }
      });
    }
  }

  append(stream, text) {
    let all = this[stream] + text;
    if (all.length > maxLogBytes) {
      all = '[...]' + all.slice(all.length - maxLogBytes);
    }
    this[stream] = all;
  }

  onLine(stream, line) {
    for (const w of [...this.watchers]) {
      if (w.stream !== stream) {
        continue;
      }
      const found = w.match(line);
      if (found) {
        this.watchers.splice(this.watchers.indexOf(w), 1);
        w.resolve(found);
      }
    }
  }

  /**
   * Resolves with match(line) for the first line of stream (printed from now
   * on) for which it is truthy. Rejects if the process exits first or after
   * timeoutMs.
   */
  waitForLine(stream, what, match, timeoutMs = 30_000) {
    if (this.exit) {
      return Promise.reject(new Error(`${this.name} has exited (code ${this.exit.code}) before printing ${what}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.watchers.splice(this.watchers.indexOf(watcher), 1);
        reject(new Error(`${this.name} did not print ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const watcher = {
        stream,
        what,
        match,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
      this.watchers.push(watcher);
    });
  }

  /** The process's JSON log lines (stderr), parsed; other lines skipped. */
  jsonLogs() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (line.startsWith('{')) {
        try {
          out.push(JSON.parse(line));
        } catch {
          // A line cut by the log cap.
        }
      }
    }
    return out;
  }

  /**
   * Stops the process: SIGTERM (tusproxy shuts down gracefully), then
   * SIGKILL if it is still there after graceMs.
   */
  async stop(graceMs = 10_000) {
    if (this.exit) {
      return this.exit;
    }
    this.child.kill('SIGTERM');
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** Everything the process printed, for a failure report. */
  report() {
    const status = this.exit ? `exited: code ${this.exit.code}, signal ${this.exit.signal}` : 'running';
    const program = this.bin === tusproxyBin ? 'tusproxy' : path.basename(this.bin);
    return `===== ${this.name} (${program} ${this.args.join(' ')}; ${status})\n` +
      `----- stdout\n${this.stdout}\n----- stderr\n${this.stderr}\n`;
  }
}

/** Parses a JSON log line, or returns null. */
export function parseJSONLine(line) {
  if (!line.startsWith('{')) {
    return null;
  }
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
}
