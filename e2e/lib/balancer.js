// A round-robin load balancer in front of several tusproxy replicas, with no
// sticky sessions, and less than none: the requests of one upload take the
// replicas in turn, so no two in a row meet the same replica. Bodies stream
// both ways (pipes, nothing buffered). It records every request: which
// replica served it and what came back, so a test can say who did what.
import http from 'node:http';

/**
 * Marks an answer the balancer made up itself (the replica was unreachable
 * or died mid-request, or none was in rotation), as opposed to tusproxy's.
 */
export const balancerErrorHeader = 'x-test-balancer-error';

// Hop-by-hop headers (RFC 9110 7.6.1): they concern one connection, and are
// not passed on.
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade']);

function endToEnd(headers) {
  const out = {};
  for (const [key, value] of Object.entries(headers)) {
    if (!hopByHop.has(key)) {
      out[key] = value;
    }
  }
  return out;
}

/**
 * One request through the balancer. status is the answer's status (null
 * while none came), byBalancer says the balancer answered it itself, ended
 * the time its answer was fully sent or the exchange broke (null while it
 * runs).
 */
class Exchange {
  constructor(seq, req, uploadId, backend) {
    this.seq = seq;
    this.method = req.headers['x-http-method-override'] || req.method;
    this.path = req.url;
    this.uploadId = uploadId;
    this.backend = backend;
    this.offset = req.headers['upload-offset'] ?? null;
    this.started = Date.now();
    this.ended = null;
    this.status = null;
    this.byBalancer = false;
    this.answerOffset = null;
    this.location = null;
    this.retryAfter = null;
    this.error = null;
  }
}

/** The balancer. Start it with startBalancer. */
export class Balancer {
  constructor() {
    this.backends = new Map(); // name -> {host, port}
    this.rotation = []; // names of the replicas that get requests
    this.exchanges = [];
    this.next = 0; // the shared turn: creations, and where an upload starts
    this.turns = new Map(); // upload id -> its next turn
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    this.server = http.createServer((req, res) => this.handle(req, res));
    // Longer than any pause of a client between two requests, so a reused
    // connection is never closed under it (which a client sees as an error).
    this.server.keepAliveTimeout = 120_000;
    this.url = null;
  }

  /** Adds a replica (its http://host:port URL) to the rotation. */
  add(name, url) {
    const u = new URL(url);
    this.backends.set(name, { host: u.hostname, port: Number(u.port) });
    this.rotation.push(name);
  }

  /** Takes a replica out of rotation, as a failing health check would. */
  remove(name) {
    this.rotation = this.rotation.filter((n) => n !== name);
  }

  /**
   * The replica for the next request (of uploadId, or of none). An upload
   * starts where the shared turn is, so uploads spread over the replicas,
   * then takes them in turn.
   */
  pick(uploadId) {
    if (this.rotation.length === 0) {
      return null;
    }
    let turn;
    if (uploadId) {
      turn = this.turns.get(uploadId) ?? this.next++;
      this.turns.set(uploadId, turn + 1);
    } else {
      turn = this.next++;
    }
    return this.rotation[turn % this.rotation.length];
  }

  /** The names of the replicas that served requests of an upload. */
  servedBy(uploadId) {
    return new Set(this.exchanges.filter((x) => x.uploadId === uploadId && x.backend).map((x) => x.backend));
  }

  /** The requests of an upload, in the order they arrived. */
  of(uploadId) {
    return this.exchanges.filter((x) => x.uploadId === uploadId);
  }

  handle(req, res) {
    const { pathname } = new URL(req.url, 'http://balancer');
    const uploadId = /^\/files\/([^/]+)$/.exec(pathname)?.[1] ?? null;
    const backend = this.pick(uploadId);
    const x = new Exchange(this.exchanges.length, req, uploadId, backend);
    this.exchanges.push(x);
    res.on('close', () => {
      x.ended = Date.now();
    });
    const answerItself = (status, message) => {
      x.status = status;
      x.byBalancer = true;
      res.writeHead(status, {
        [balancerErrorHeader]: '1',
        'Content-Type': 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(message),
        // The request body may be unread: this connection is done.
        Connection: 'close',
      });
      res.end(message);
    };
    if (!backend) {
      req.resume();
      answerItself(503, 'no replica in rotation\n');
      return;
    }
    const { host, port } = this.backends.get(backend);
    const out = http.request({
      host,
      port,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.headers),
      agent: this.agent,
    });
    out.on('response', (answer) => {
      x.status = answer.statusCode;
      x.answerOffset = answer.headers['upload-offset'] ?? null;
      x.location = answer.headers.location ?? null;
      x.retryAfter = answer.headers['retry-after'] ?? null;
      res.writeHead(answer.statusCode, endToEnd(answer.headers));
      answer.pipe(res);
      answer.on('error', (err) => {
        x.error = err.message;
      });
      // The replica died mid-answer: so does the client's answer.
      answer.on('close', () => {
        if (!answer.complete) {
          res.destroy();
        }
      });
    });
    out.on('error', (err) => {
      x.error = err.message;
      if (!res.headersSent) {
        answerItself(502, `replica ${backend}: ${err.message}\n`);
        return;
      }
      // The replica answered before reading the whole body (a 503 mid-PATCH,
      // say) and closed the connection, so sending the rest failed. Its
      // answer still goes to the client whole, as nginx passes on an early
      // answer; the rest of the client's body is read and dropped.
      req.unpipe(out);
      req.resume();
    });
    // The client went away: so does the request to the replica.
    res.on('close', () => {
      if (!res.writableFinished) {
        out.destroy();
      }
    });
    req.pipe(out);
  }
}

/** Starts a balancer on a free loopback port; it is closed when the test ends. */
export async function startBalancer(ctx) {
  const lb = new Balancer();
  await new Promise((resolve, reject) => {
    lb.server.once('error', reject);
    lb.server.listen(0, '127.0.0.1', resolve);
  });
  lb.url = `http://127.0.0.1:${lb.server.address().port}`;
  ctx.defer(() => new Promise((resolve) => {
    lb.server.closeAllConnections();
    lb.server.close(() => resolve());
    lb.agent.destroy();
  }));
  return lb;
}
