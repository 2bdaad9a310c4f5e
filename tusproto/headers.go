package tusproto

// Version is the only tus protocol version this package speaks. It is sent
// in Tus-Resumable on every upstream request and compared against the
// clients' Tus-Resumable.
const Version = "1.0.0"

// Header names used by tus 1.0.0 and its extensions. They are written as the
// specification spells them; http.Header's Get and Set canonicalise keys, so
// HeaderMethodOverride works there although its canonical form is
// "X-Http-Method-Override". Index an http.Header map directly only with
// http.CanonicalHeaderKey.
const (
	// HeaderTusResumable carries the protocol version on every request and
	// response except OPTIONS.
	HeaderTusResumable = "Tus-Resumable"
	// HeaderTusVersion lists the versions a server supports (OPTIONS, 412).
	HeaderTusVersion = "Tus-Version"
	// HeaderTusExtension lists the extensions a server supports (OPTIONS).
	HeaderTusExtension = "Tus-Extension"
	// HeaderTusMaxSize is the largest upload size a server accepts, in bytes.
	HeaderTusMaxSize = "Tus-Max-Size"
	// HeaderUploadOffset is the byte offset of a PATCH body, or the number of
	// bytes the server holds in HEAD and PATCH responses.
	HeaderUploadOffset = "Upload-Offset"
	// HeaderUploadLength is the total size of an upload, in bytes.
	HeaderUploadLength = "Upload-Length"
	// HeaderUploadMetadata carries the key/value pairs given at creation; see
	// ParseMetadata.
	HeaderUploadMetadata = "Upload-Metadata"
	// HeaderUploadDeferLength is "1" when the length is not known at creation
	// (creation-defer-length extension).
	HeaderUploadDeferLength = "Upload-Defer-Length"
	// HeaderUploadConcat marks partial and final uploads (concatenation
	// extension).
	HeaderUploadConcat = "Upload-Concat"
	// HeaderUploadExpires is the HTTP date after which an unfinished upload
	// may be removed (expiration extension).
	HeaderUploadExpires = "Upload-Expires"
	// HeaderMethodOverride lets clients that cannot send PATCH or DELETE send
	// POST with the real method in this header.
	HeaderMethodOverride = "X-HTTP-Method-Override"
)

// ContentTypeOffsetStream is the media type every tus PATCH body must carry;
// see IsOffsetStream.
const ContentTypeOffsetStream = "application/offset+octet-stream"
