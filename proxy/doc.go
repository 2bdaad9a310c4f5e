// Package proxy is tusproxy's HTTP adapter: a tus 1.0.0 server whose
// creation step calls Kinescope's /v2/init and whose PATCHes are streamed,
// offset-checked, to the tus endpoint Kinescope issued for the upload. The
// upload lifecycle itself (create, open, write, offset, terminate, expire,
// and its events) is package proxy/upload; this package turns requests into
// its calls and its errors into tus answers (answer, in errors.go). See
// ARCHITECTURE.md at the repository root.
//
// # Why not tusd's pkg/handler
//
// The design brief asks for tusd v2's handler as the protocol engine unless it
// cannot meet the core issue. It cannot, for reasons that all come from tusd
// being built to store bytes rather than forward them:
//
//   - Its body reader never returns an error to the DataStore: a client that
//     disconnects, a read timeout and a lock take-over all look like a clean
//     io.EOF (handler/body_reader.go). A forwarding store must know the body
//     failed, so that it stops the upstream request mid-body and asks the
//     upstream (HEAD) how many bytes it kept; with a chunked body it cannot
//     even compare counts, since WriteChunk is not told the Content-Length.
//   - The upstream is the source of truth for HEAD, but tusd calls GetInfo on
//     every POST, PATCH and HEAD alike, so a store cannot ask the upstream for
//     HEAD only without an extra upstream round trip on every PATCH.
//   - Where tusd departs from the tus 1.0.0 spec we must follow the spec: a
//     412 carries no Tus-Version, a wrong PATCH Content-Type is 400 not 415,
//     Upload-Concat is silently ignored without a concater (each part of a
//     parallel upload would become its own Kinescope video), malformed
//     Upload-Metadata is silently dropped and HEAD re-serialises it from a
//     map, there is no expiration extension, and a lock that cannot be had is
//     a 500. Each would need a response-rewriting wrapper around tusd.
//   - If the first write of creation-with-upload fails, tusd drops the 201's
//     Location and the Kinescope video is orphaned; any error that is not a
//     handler.Error is sent to the client with its text, which would leak
//     upstream URLs.
//
// So the tus protocol is served here (routes.go, create.go, uploads.go) and
// the lifecycle in proxy/upload, and tusd is used where it fits: its handler.Locker
// contract and memorylocker give one writer per upload with release requests,
// exactly tusd's locking semantics, and the Kinescope emulator
// (proxy/kinescopetest) is a real tusd server, so every test talks to tusd as
// the upstream.
package proxy
