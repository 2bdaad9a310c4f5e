package netfail_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/netfail"
)

// dial wraps err as net/http hands a failed dial back: a *url.Error around
// a *net.OpError around an *os.SyscallError.
func dial(err error) error {
	return &url.Error{Op: "Post", URL: "https://uploader.example/v2/init?sig=secret",
		Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}}
}

func TestClassify(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(live)
	cancel()
	expired, cancelExpired := context.WithTimeout(live, -1)
	defer cancelExpired()

	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want netfail.Class
	}{
		{"caller canceled", canceled, dial(syscall.ECONNREFUSED), netfail.Canceled},
		{"caller canceled, any transport text", canceled, net.ErrClosed, netfail.Canceled},
		{"caller's deadline", expired, errors.New("use of closed network connection"), netfail.Timeout},
		{"cancellation the caller did not make", live, fmt.Errorf("read: %w", context.Canceled), netfail.Network},
		{"deadline in the error", live, &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, netfail.Timeout},
		{"I/O deadline", live, &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, netfail.Timeout},
		{"ETIMEDOUT", live, dial(syscall.ETIMEDOUT), netfail.Timeout},
		{"DNS timeout", live, &net.DNSError{Err: "i/o timeout", Name: "h", IsTimeout: true}, netfail.Timeout},
		{"refused", live, dial(syscall.ECONNREFUSED), netfail.Refused},
		{"reset", live, &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, netfail.Reset},
		{"broken pipe", live, &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}, netfail.Closed},
		{"EOF", live, &url.Error{Op: "Patch", URL: "u", Err: io.EOF}, netfail.Closed},
		{"unexpected EOF", live, io.ErrUnexpectedEOF, netfail.Closed},
		{"own end closed after upstream EOF", live, &net.OpError{Op: "write", Err: net.ErrClosed}, netfail.Closed},
		{"host unreachable", live, dial(syscall.EHOSTUNREACH), netfail.Unreachable},
		{"network unreachable", live, dial(syscall.ENETUNREACH), netfail.Unreachable},
		{"DNS", live, &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}}, netfail.NameLookup},
		{"TLS verification", live, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, netfail.TLSCertificate},
		{"bare unknown authority", live, x509.UnknownAuthorityError{}, netfail.TLSCertificate},
		{"bare host name mismatch", live, x509.HostnameError{Host: "h"}, netfail.TLSCertificate},
		{"bare invalid certificate", live, x509.CertificateInvalidError{Reason: x509.Expired}, netfail.TLSCertificate},
		{"not TLS", live, tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, netfail.TLSHandshake},
		{"unknown", live, errors.New("something else"), netfail.Network},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := netfail.Classify(tt.ctx, tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestClassStringsAreDistinct(t *testing.T) {
	seen := map[string]netfail.Class{}
	for c := netfail.Network; c <= netfail.TLSHandshake; c++ {
		s := c.String()
		if prev, dup := seen[s]; dup {
			t.Errorf("classes %d and %d are both %q", prev, c, s)
		}
		seen[s] = c
	}
}
