// The Kinescope guide's upload.js, pointed at tusproxy: the browser speaks
// tus to one origin and never sees the API token or Kinescope's endpoint.
//
// The tus endpoint is this page's own /files/ (where `tusproxy dev` serves
// it), or the URL given as ?endpoint=... when the page is served elsewhere
// (that origin must then be in tusproxy's TUSPROXY_CORS_ORIGINS).
//
// The page's state is on <body data-state="...">: idle, uploading, paused,
// done or error, for people and for tests alike. Once the upload is done the
// page shows the Kinescope video it became (#video-id), which tusproxy names
// in the Kinescope-Video-Id header of every answer about an upload.
'use strict';

const endpoint = new URLSearchParams(location.search).get('endpoint') ||
  new URL('/files/', location.href).href;

// The answers that carry Kinescope-Video-Id are tusproxy's. In the seed flow
// (?endpoint=.../upload) the bytes go to Kinescope directly, and asking its
// answers for a header they do not expose only makes the browser complain.
const tusproxyOrigin = new URL(endpoint, location.href).origin;

let upload = null;
let videoId = '';

function $(id) {
  return document.getElementById(id);
}

function setState(state, status) {
  document.body.dataset.state = state;
  if (status !== undefined) {
    $('status').textContent = status;
  }
}

function setProgress(sent, total) {
  const percent = total > 0 ? Math.floor((sent / total) * 100) : 0;
  $('progress').value = percent;
  $('percent').textContent = percent + '%';
}

function setButtons(running) {
  $('pause').disabled = !running;
  $('resume').disabled = running || upload === null;
}

// describeError turns a tus-js-client error into a sentence for people.
// tusproxy answers {"error": {"code", "message"}}; no answer at all is a
// network failure or, from another origin, a refusal by CORS.
function describeError(error) {
  const res = error.originalResponse;
  if (!res) {
    if (error.originalRequest) {
      // The browser tells scripts nothing more (the console does).
      return 'no answer from ' + endpoint + ': the network failed, or this page\'s origin (' +
        location.origin + ') is not in tusproxy\'s TUSPROXY_CORS_ORIGINS.';
    }
    return error.message;
  }
  try {
    const body = JSON.parse(res.getBody());
    if (body && body.error && body.error.message) {
      return body.error.message + ' (HTTP ' + res.getStatus() + ', ' + body.error.code + ')';
    }
  } catch (ignored) {
    // Not tusproxy's JSON: the message below says what there is.
  }
  return error.message;
}

// rememberVideoId keeps the video id from an answer of tusproxy: the
// creation's 201 names it, and so does each HEAD and PATCH after it.
function rememberVideoId(req, res) {
  if (new URL(req.getURL(), location.href).origin !== tusproxyOrigin) {
    return;
  }
  const id = res.getHeader('Kinescope-Video-Id');
  if (id) {
    videoId = id;
  }
}

function showVideoId(id) {
  $('video-id').textContent = id;
  $('video').hidden = id === '';
}

function initializeUpload(file) {
  $('error').textContent = '';
  videoId = '';
  showVideoId('');
  upload = new tus.Upload(file, {
    endpoint: endpoint,
    retryDelays: [0, 3000, 5000, 10000, 20000],
    chunkSize: 10000000, // 10 MB per PATCH, as in the Kinescope guide
    metadata: {
      filename: file.name,
      filetype: file.type,
    },
    // Lets a reloaded page find this upload again in localStorage.
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    // Says so while tus-js-client waits to try again, instead of seeming stuck.
    onShouldRetry: function (error, retryAttempt, options) {
      const retry = tus.defaultOptions.onShouldRetry(error, retryAttempt, options);
      if (retry) {
        const delay = options.retryDelays[retryAttempt];
        $('error').textContent = 'Problem: ' + describeError(error) + ' Trying again in ' +
          Math.round(delay / 1000) + ' s (attempt ' + (retryAttempt + 1) + ' of ' + options.retryDelays.length + ').';
      }
      return retry;
    },
    onError: function (error) {
      console.error('Upload error:', error);
      $('error').textContent = 'Upload failed: ' + describeError(error);
      setState('error', 'Stopped.');
      setButtons(false);
      // Trying again cannot help when tusproxy refused the upload itself (a
      // 4xx other than 409 and 423): the file is too large, not allowed...
      const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
      if (status >= 400 && status < 500 && status !== 409 && status !== 423) {
        $('resume').disabled = true;
      }
    },
    onProgress: function (bytesUploaded, bytesTotal) {
      setProgress(bytesUploaded, bytesTotal);
      $('status').textContent = 'Uploading ' + file.name + ': ' + bytesUploaded + ' of ' + bytesTotal + ' bytes';
    },
    onChunkComplete: function () {
      // A chunk went through: an earlier retry notice is outdated.
      $('error').textContent = '';
    },
    onAfterResponse: rememberVideoId,
    // tus-js-client 4 passes the last answer to onSuccess: the last PATCH's
    // 204, or the HEAD that found the upload already complete. Both name
    // the video; the seed flow's last answer is Kinescope's, so the id
    // remembered from tusproxy's creation answer stands in.
    onSuccess: function (payload) {
      const last = payload && payload.lastResponse;
      const fromTusproxy = last && new URL(upload.url, location.href).origin === tusproxyOrigin;
      showVideoId((fromTusproxy && last.getHeader('Kinescope-Video-Id')) || videoId);
      setProgress(1, 1);
      $('error').textContent = '';
      setState('done', 'Done: ' + file.name + ' uploaded (' + upload.url + ').');
      $('pause').disabled = true;
      $('resume').disabled = true;
    },
  });

  // Resume an upload of the same file that an earlier page started.
  upload.findPreviousUploads()
    .then(function (previousUploads) {
      if (previousUploads.length > 0) {
        upload.resumeFromPreviousUpload(previousUploads[0]);
        $('status').textContent = 'Resuming an earlier upload of ' + file.name + '.';
      }
      start();
    })
    .catch(function (error) {
      console.error('Error finding previous uploads:', error);
      start();
    });
}

function start() {
  setState('uploading');
  upload.start();
  setButtons(true);
}

// tellAboutUnfinishedUploads says when an earlier page left an upload
// unfinished, so that the user knows choosing the same file resumes it.
function tellAboutUnfinishedUploads() {
  const storage = tus.defaultOptions.urlStorage;
  if (!storage || typeof storage.findAllUploads !== 'function') {
    return;
  }
  storage.findAllUploads().then(function (uploads) {
    // A stored upload is keyed by a fingerprint that ends with the endpoint:
    // only those of this endpoint can be resumed here.
    const names = uploads
      .filter(function (u) { return String(u.urlStorageKey).indexOf('-' + endpoint + '::') !== -1; })
      .map(function (u) { return (u.metadata && u.metadata.filename) || 'a file'; });
    if (names.length > 0 && document.body.dataset.state === 'idle') {
      $('status').textContent = 'Unfinished upload of ' + names.join(', ') +
        ': choose the same file again to resume it.';
    }
  }).catch(function (error) {
    console.error('Error listing earlier uploads:', error);
  });
}

document.addEventListener('DOMContentLoaded', function () {
  setState('idle');
  $('endpoint').textContent = endpoint;
  if (typeof tus === 'undefined') {
    $('error').textContent = 'tus-js-client did not load (is the CDN reachable?).';
    return;
  }
  if (!tus.isSupported) {
    $('error').textContent = 'This browser does not support tus uploads.';
    return;
  }
  $('file-input').addEventListener('change', function (event) {
    const file = event.target.files[0];
    if (!file) {
      return;
    }
    if (upload !== null) {
      upload.abort();
    }
    initializeUpload(file);
  });
  $('pause').addEventListener('click', function () {
    upload.abort();
    setState('paused', 'Paused.');
    setButtons(false);
  });
  $('resume').addEventListener('click', function () {
    $('error').textContent = '';
    start();
  });
  tellAboutUnfinishedUploads();
});
