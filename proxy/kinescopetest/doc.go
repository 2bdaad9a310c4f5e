// Package kinescopetest is an emulator of Kinescope's uploader
// (https://uploader.kinescope.io), importable in the spirit of net/http/httptest.
//
// tusproxy's tests, its `tusproxy emulator` and `tusproxy dev` commands, and users'
// own tests run it in place of Kinescope. It answers:
//
//   - POST /v2/init: checks the Bearer token and the JSON body like Kinescope
//     does, creates a video and answers 201 with a one-off tus endpoint,
//     {"data":{"id":..., "endpoint":"<base>/v2/upload/<upload id>", ...}}.
//   - /v2/upload/{uploadID}: a real tus 1.0.0 server, tusd v2's pkg/handler over
//     pkg/filestore and pkg/memorylocker, for HEAD, PATCH, DELETE and OPTIONS.
//     Creation (POST) is refused with 405: endpoints are issued by /v2/init only.
//     With [Options.Discard] the store keeps no bytes, only offsets and a
//     running SHA-256 per upload (for load tests).
//   - GET /v2/emulator/videos and GET /v2/emulator/videos/{id}: the videos the
//     emulator knows, with the hex SHA-256 of the bytes each one received, so
//     tests written in other languages can check the bytes. These two routes
//     do not exist at Kinescope; they require the same Bearer token.
//
// Every response carries a fresh X-Request-ID header, as Kinescope's do. Errors
// of the API routes have Kinescope's shape,
// {"error":{"code":<int>,"message":"...","detail":"..."}}; errors of the tus
// routes are tusd's plain-text ones.
//
// Faults (see [Faults] and [Emulator.SetFaults]) make the emulator misbehave on
// purpose: refused or dropped inits, slow answers, connections cut in the middle
// of a PATCH with the bytes before the cut kept, failing tus requests and an
// upstream that lies about offsets.
//
// Nothing in this package logs or returns the API token.
package kinescopetest
