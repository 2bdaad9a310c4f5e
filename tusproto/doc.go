// Package tusproto holds the pieces of the tus 1.0.0 protocol that tusproxy
// needs on both of its sides: header names, the number and Upload-Metadata
// codecs, and a small client for the upstream tus upload URL that Kinescope
// issues.
//
// Specification: https://tus.io/protocols/resumable-upload (version 1.0.0).
package tusproto
