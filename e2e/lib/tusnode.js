// tus-js-client in Node, with every request and answer recorded so that a
// test can say what went over the wire (which method, at which offset, what
// came back).
import * as tus from 'tus-js-client';

export { tus };

/**
 * Creates a tus.Upload of data with options (retries off unless options say
 * otherwise: an unexpected failure must fail the test). Call start() or
 * upload.start(); done settles with the upload or its error.
 *
 * log.requests: {method, rawMethod, url, offset, override} per request sent,
 * method being the effective one (X-HTTP-Method-Override included).
 * log.responses: {method, url, status, offset, location, body} per answer.
 * log.accepted: bytesAccepted of each onChunkComplete.
 */
export function newUpload(data, options = {}) {
  const log = { requests: [], responses: [], accepted: [], progress: [] };
  const describe = (req) => ({
    method: req.getHeader('X-HTTP-Method-Override') || req.getMethod(),
    rawMethod: req.getMethod(),
    url: req.getURL(),
    offset: req.getHeader('Upload-Offset'),
    override: req.getHeader('X-HTTP-Method-Override') || null,
  });
  let upload;
  const done = new Promise((resolve, reject) => {
    upload = new tus.Upload(data, {
      retryDelays: null,
      ...options,
      onBeforeRequest(req) {
        log.requests.push(describe(req));
        return options.onBeforeRequest?.(req);
      },
      onAfterResponse(req, res) {
        log.responses.push({
          ...describe(req),
          status: res.getStatus(),
          offset: res.getHeader('Upload-Offset') ?? null,
          location: res.getHeader('Location') ?? null,
          body: res.getBody(),
        });
        return options.onAfterResponse?.(req, res);
      },
      onProgress(sent, total) {
        log.progress.push(sent);
        options.onProgress?.(sent, total);
      },
      onChunkComplete(size, accepted, total) {
        log.accepted.push(accepted);
        options.onChunkComplete?.(size, accepted, total);
      },
      onSuccess() {
        resolve(upload);
      },
      onError(err) {
        reject(err);
      },
    });
  });
  // An upload that is aborted on purpose never settles; nobody awaits it then.
  done.catch(() => {});
  return { upload, done, log, start: () => { upload.start(); return done; } };
}

/** Uploads data with options and resolves with the upload and its log. */
export async function uploadAll(data, options) {
  const u = newUpload(data, options);
  await u.start();
  return u;
}

/** Short retry delays: faults are retried fast, and a stuck upload still fails. */
export const fastRetries = [0, 100, 200, 500, 1000, 1000, 2000, 2000, 3000, 3000];
