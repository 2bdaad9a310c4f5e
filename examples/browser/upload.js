// The Kinescope guide's upload.js, pointed at tusproxy: the browser speaks
// tus to one origin and never sees the API token or Kinescope's endpoint.
//
// The tus endpoint is this page's own /files/ (where `tusproxy dev` serves
// it), or the URL given as ?endpoint=... when the page is served elsewhere.
'use strict';

const endpoint = new URLSearchParams(location.search).get('endpoint') ||
  new URL('/files/', location.href).href;

let upload = null;

function $(id) {
  return document.getElementById(id);
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

function initializeUpload(file) {
  $('error').textContent = '';
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
    onError: function (error) {
      console.error('Upload error:', error);
      $('error').textContent = 'Upload failed: ' + error.message;
      $('status').textContent = 'Stopped.';
      setButtons(false);
    },
    onProgress: function (bytesUploaded, bytesTotal) {
      setProgress(bytesUploaded, bytesTotal);
      $('status').textContent = 'Uploading ' + file.name + ': ' + bytesUploaded + ' of ' + bytesTotal + ' bytes';
    },
    onSuccess: function () {
      setProgress(1, 1);
      $('status').textContent = 'Done: ' + file.name + ' uploaded (' + upload.url + ').';
      $('pause').disabled = true;
      $('resume').disabled = true;
      document.body.dataset.state = 'done';
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
  document.body.dataset.state = 'uploading';
  upload.start();
  setButtons(true);
}

document.addEventListener('DOMContentLoaded', function () {
  $('endpoint').textContent = endpoint;
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
    document.body.dataset.state = 'paused';
    $('status').textContent = 'Paused.';
    setButtons(false);
  });
  $('resume').addEventListener('click', function () {
    $('error').textContent = '';
    start();
  });
  if (typeof tus === 'undefined') {
    $('error').textContent = 'tus-js-client did not load (is the CDN reachable?).';
  } else if (!tus.isSupported) {
    $('error').textContent = 'This browser does not support tus uploads.';
  }
});
