// Starting tusproxy's three commands as separate processes, and the
// emulator's own HTTP routes (videos with the SHA-256 of their bytes, faults).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parseJSONLine } from './procs.js';
import { sha256 } from './data.js';

/** The Kinescope emulator's own routes, as a test uses them. */
export class Emulator {
  constructor(url, token, proc) {
    this.url = url; // http://127.0.0.1:PORT
    this.initURL = `${url}/v2/init`;
    this.token = token;
    this.proc = proc;
  }

  async request(method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { Authorization: `Bearer ${this.token}` },
      body,
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`emulator ${method} ${path}: ${res.status} ${text}`);
    }
    return JSON.parse(text);
  }

  /** Every video created by /v2/init, in creation order, with sha256. */
  async videos() {
    return (await this.request('GET', '/v2/emulator/videos')).data;
  }

  async video(id) {
    return (await this.request('GET', `/v2/emulator/videos/${id}`)).data;
  }

  /** Switches faults at run time (a spec such as "latency=1s"; "" for none). */
  async setFaults(spec) {
    const answer = await this.request('PUT', '/v2/emulator/faults', spec);
    return answer.faults;
  }

  /**
   * /v2/init requests the emulator has received, refused ones included, read
   * from its log: it logs each one it answers (or drops).
   */
  initCount() {
    return this.proc.jsonLogs().filter((l) => l.msg === 'kinescopetest: video created' ||
      (typeof l.msg === 'string' && l.msg.startsWith('kinescopetest: init'))).length;
  }

  /** Log lines of the emulator whose msg is msg (faults it injected, ...). */
  logCount(msg) {
    return this.proc.jsonLogs().filter((l) => l.msg === msg).length;
  }

  /**
   * Asserts that exactly one video holds data, whole and byte-exact, and
   * returns it. With filename, the video is the one of that filename and
   * other videos may exist.
   */
  async assertStored(data, { filename, videos } = {}) {
    videos ??= await this.videos();
    let video;
    if (filename === undefined) {
      assert.equal(videos.length, 1, `expected exactly one video at the emulator, got ${JSON.stringify(videos)}`);
      video = videos[0];
    } else {
      const named = videos.filter((v) => v.filename === filename);
      assert.equal(named.length, 1, `expected one video named ${filename}, got ${named.length}`);
      video = named[0];
    }
    assert.equal(video.filesize, data.length, `filesize of video ${video.filename}`);
    assert.equal(video.offset, data.length, `offset of video ${video.filename}`);
    assert.equal(video.complete, true, `video ${video.filename} is complete`);
    assert.equal(video.terminated, false, `video ${video.filename} is not terminated`);
    assert.equal(video.sha256, sha256(data), `SHA-256 of the bytes of video ${video.filename}`);
    return video;
  }
}

/**
 * Starts `tusproxy emulator` on a free port. faults is a spec for
 * -emulator-faults (none by default).
 */
export async function startEmulator(ctx, { faults } = {}) {
  const token = randomBytes(16).toString('hex');
  const args = ['emulator', '-emulator-listen', '127.0.0.1:0', '-emulator-token', token,
    '-emulator-dir', ctx.tmpDir('emulator')];
  if (faults) {
    args.push('-emulator-faults', faults);
  }
  const proc = ctx.spawn('emulator', args, { TUSPROXY_LOG_FORMAT: 'json' });
  const url = await proc.waitForLine('stdout', 'its listening line',
    (line) => /^Kinescope emulator listening on (http:\/\/\S+) /.exec(line)?.[1]);
  return new Emulator(url, token, proc);
}

/**
 * Starts `tusproxy serve` on a free port, pointed at emu. env adds or
 * overrides settings (TUSPROXY_CORS_ORIGINS, ...). The store is a bbolt file
 * in the test's directory unless env says otherwise.
 */
export async function startProxy(ctx, emu, env = {}) {
  const proc = ctx.spawn('tusproxy', ['serve'], {
    KINESCOPE_API_TOKEN: emu.token,
    KINESCOPE_PARENT_ID: 'e2e-project',
    KINESCOPE_INIT_URL: emu.initURL,
    // host:port: a bare host allows only the scheme's default port.
    TUSPROXY_UPSTREAM_HOSTS: new URL(emu.url).host,
    TUSPROXY_LISTEN: '127.0.0.1:0',
    TUSPROXY_STORE: `bolt:${ctx.tmpDir('proxy')}/tusproxy.db`,
    // Off, so that processes of tests running at once do not clash on
    // its port. (An empty variable means unset: the default, 127.0.0.1:9090.)
    TUSPROXY_METRICS_LISTEN: 'off',
    TUSPROXY_LOG_FORMAT: 'json',
    TUSPROXY_SHUTDOWN_TIMEOUT: '2s',
    // serve needs its auth mode chosen; the tests upload anonymously and
    // create more uploads from one address than anonymous serve's default
    // rate allows.
    TUSPROXY_AUTH: 'none',
    TUSPROXY_CREATE_RATE: '0',
    ...env,
  });
  const listening = await proc.waitForLine('stderr', 'its "tusproxy listening" log line', (line) => {
    const l = parseJSONLine(line);
    return l?.msg === 'tusproxy listening' ? l : null;
  });
  const url = `http://${listening.addr}`;
  return { url, filesURL: `${url}/files/`, seedURL: `${url}/upload`, proc, requests: () => requestLogs(proc) };
}

/** The per-request log lines of a tusproxy process. */
export function requestLogs(proc) {
  return proc.jsonLogs().filter((l) => l.msg === 'request');
}

/**
 * Starts `tusproxy dev` on a free port, as a new user would (plus a
 * directory for the emulator and a short shutdown), and reads its banner:
 * the page to open, the emulator's URL and token.
 */
export async function startDev(ctx, args = []) {
  const proc = ctx.spawn('dev', ['dev', '-listen', '127.0.0.1:0', '-metrics-listen', '',
    '-emulator-dir', ctx.tmpDir('emulator'), '-shutdown-timeout', '2s', ...args], {});
  const banner = (what, re) => proc.waitForLine('stdout', what, (line) => re.exec(line));
  const [open, running, received] = await Promise.all([
    banner('"Open in a browser to upload"', /Open in a browser to upload:\s+(\S+)/),
    banner('"tusproxy dev is running"', /tusproxy dev is running \(Kinescope emulator: (http:\/\/[^)]+)\)/),
    banner('"What the emulator received"', /What the emulator received:.*Bearer ([0-9a-f]+)'/),
  ]);
  const pageURL = open[1];
  return {
    pageURL,
    filesURL: new URL('/files/', pageURL).href,
    emulator: new Emulator(running[1], received[1], proc),
    proc,
    requests: () => requestLogs(proc),
  };
}
