// Package browser holds the browser example: the seed's frontend (a page
// that uploads with tus-js-client) pointed at tusproxy. `tusproxy dev`
// serves it at /, so a new user can open a browser and upload.
package browser

import "embed"

// Files are index.html and upload.js.
//
//go:embed index.html upload.js
var Files embed.FS
