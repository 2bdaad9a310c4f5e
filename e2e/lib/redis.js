// A redis-server of the test's own, on a free loopback port, that the test
// may stop and start again (same port, same directory). It persists like the
// Redis an operator runs for tusproxy: AOF with an fsync on every write, so a
// restart keeps every record it acknowledged.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const redisServerPath = process.env.REDIS_SERVER_PATH || '/usr/bin/redis-server';

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One redis-server, started and stopped by the test. */
export class RedisServer {
  constructor(ctx, port, dir) {
    this.ctx = ctx;
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}/0`;
    this.proc = null;
    this.starts = 0;
  }

  /**
   * Starts redis-server and resolves once it accepts connections (it has
   * loaded its AOF by then). Rejects if it exits first, e.g. its port was
   * taken.
   */
  async start() {
    if (this.proc && !this.proc.exit) {
      throw new Error('redis-server is already running');
    }
    this.starts++;
    this.proc = this.ctx.spawn(`redis-server #${this.starts} (port ${this.port})`, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--logfile', '',
    ], {}, { bin: redisServerPath });
    await this.proc.waitForLine('stdout', '"Ready to accept connections"',
      (line) => line.includes('Ready to accept connections'), 20_000);
  }

  /**
   * Stops redis-server as an operator's restart does: SIGTERM (it syncs its
   * AOF and exits), SIGKILL only if it is still there after 10 s.
   */
  async stop() {
    if (!this.proc || this.proc.exit) {
      return;
    }
    const exit = await this.proc.stop(10_000);
    if (exit.signal === 'SIGKILL') {
      throw new Error('redis-server did not exit within 10 s of SIGTERM');
    }
  }
}

/**
 * Starts a redis-server for the test on a free port, with its data in the
 * test's directory. It is stopped when the test ends.
 */
export async function startRedis(ctx) {
  if (!fs.existsSync(redisServerPath)) {
    throw new Error(`${redisServerPath} is missing: apt-get install -y redis-server (or set REDIS_SERVER_PATH)`);
  }
  const dir = ctx.tmpDir('redis');
  // A port free a moment ago can be taken by the time redis-server binds it
  // (other tests run at once): then try another.
  for (let attempt = 1; ; attempt++) {
    const redis = new RedisServer(ctx, await freePort(), path.join(dir, `attempt-${attempt}`));
    fs.mkdirSync(redis.dir);
    try {
      await redis.start();
      ctx.defer(() => redis.stop());
      return redis;
    } catch (err) {
      await redis.proc?.stop();
      if (attempt >= 3) {
        throw err;
      }
    }
  }
}
