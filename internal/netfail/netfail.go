// Package netfail sorts the failure of an HTTP call that left no usable
// answer (the error of http.Client.Do, or of reading an answer's body) into a
// small fixed set of classes, each with a few fixed words for logs and error
// texts. The upstream clients (package kinescope for /v2/init, package
// tusproto for the tus endpoints) share it so that the same failure is named
// and counted the same way whichever upstream it came from.
//
// The phrases never quote the error itself: raw texts such as
// "dial tcp 10.0.0.1:443: connect: connection refused" say nothing more useful
// and may carry addresses, URLs and the capabilities in them.
package netfail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Class is the kind of a network failure.
type Class int

// The classes. The zero Class, Network, is a failure of no narrower class.
const (
	// Network: a failure of no narrower class.
	Network Class = iota
	// Timeout: the caller's deadline passed, or a transport timeout (dial,
	// TLS handshake, response header, I/O deadline) fired.
	Timeout
	// Canceled: the caller's context was canceled.
	Canceled
	// Refused: nothing listens at the address.
	Refused
	// Reset: the upstream reset the connection.
	Reset
	// Closed: the upstream closed the connection before a complete answer,
	// or while the request body was still being written.
	Closed
	// Unreachable: no route to the host or network.
	Unreachable
	// NameLookup: the host name did not resolve.
	NameLookup
	// TLSCertificate: the upstream's certificate was not trusted.
	TLSCertificate
	// TLSHandshake: the upstream did not speak TLS, or the handshake failed.
	TLSHandshake
)

// String returns the class in a few words, such as "connection refused".
func (c Class) String() string {
	switch c {
	case Timeout:
		return "timed out"
	case Canceled:
		return "canceled"
	case Refused:
		return "connection refused"
	case Reset:
		return "connection reset by upstream"
	case Closed:
		return "connection closed by upstream"
	case Unreachable:
		return "upstream unreachable"
	case NameLookup:
		return "host name lookup failed"
	case TLSCertificate:
		return "TLS certificate verification failed"
	case TLSHandshake:
		return "TLS handshake failed"
	}
	return "network error"
}

// Classify sorts err, the failure of a call made with ctx.
//
// ctx is asked first: once it has ended, the transport's error may be
// anything from "context canceled" to "use of closed network connection",
// and the cause is the caller's deadline (Timeout) or the caller giving up
// (Canceled). Canceled is reported only then: an error that wraps
// context.Canceled while ctx is live comes from a cancellation the caller
// did not make, which is a failure of the call (Network), not the caller
// leaving.
func Classify(ctx context.Context, err error) Class {
	switch ctxErr := ctx.Err(); {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return Timeout
	case ctxErr != nil:
		return Canceled
	}
	var (
		netErr     net.Error
		dnsErr     *net.DNSError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &netErr) && netErr.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ECONNRESET):
		return Reset
	case errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		// The transport closes its own end once it reads EOF from the
		// upstream; a body write still under way then fails with this.
		errors.Is(err, net.ErrClosed):
		return Closed
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Unreachable
	case errors.As(err, &dnsErr):
		return NameLookup
	// crypto/tls wraps verification failures in CertificateVerificationError;
	// the bare x509 errors come from custom verification callbacks.
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalidErr):
		return TLSCertificate
	case errors.As(err, &recordErr):
		return TLSHandshake
	}
	return Network
}
