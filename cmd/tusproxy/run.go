package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/examples/browser"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// errUsage means the problem was already explained on stderr.
var errUsage = errors.New("usage")

const usage = `tusproxy: a tus 1.0.0 reverse proxy for Kinescope uploads

Usage:
  tusproxy serve [flags]     run the proxy (needs KINESCOPE_API_TOKEN and KINESCOPE_PARENT_ID)
  tusproxy dev [flags]       proxy + Kinescope emulator in one process, no token needed
  tusproxy emulator [flags]  the Kinescope uploader emulator alone
  tusproxy version           print the version

Every flag is also an environment variable; run "tusproxy <command> -h" to list them.
`

// run is the whole program; main only wires it to the process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve", "dev", "emulator":
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "tusproxy", version)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "tusproxy: unknown command %q\n\n%s", cmd, usage)
		return errUsage
	}
	cfg, err := config.Load(config.Command(cmd), args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// One line per problem, each naming the flag and the variable.
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, "tusproxy: "+line)
		}
		return errUsage
	}
	logger := newLogger(cfg, stderr, isTerminal(stderr), getenv("NO_COLOR") != "")
	switch cmd {
	case "emulator":
		return runEmulator(ctx, cfg, logger, stdout)
	case "dev":
		return runDev(ctx, cfg, logger, stdout)
	default:
		return serve(ctx, cfg, logger, serveOptions{})
	}
}

// newServer is the http.Server every listener of tusproxy uses. Headers
// must arrive within the read-header timeout and fit the header cap (431
// above it). ReadTimeout and WriteTimeout stay 0: an upload body may stream
// for hours. The proxy bounds every request body itself with read deadlines:
// per read (the body idle timeout and minimum rate), and for bodies its
// handlers do not read (proxy's boundBodies).
func newServer(h http.Handler, logger *slog.Logger, readHeaderTimeout time.Duration, maxHeaderBytes int64) *http.Server {
	return &http.Server{
		Handler:           h,
		ConnContext:       proxy.ConnContext,
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    int(maxHeaderBytes),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// serveOptions are what dev adds to serve.
type serveOptions struct {
	onListen func(public, admin net.Addr) // called once the listeners are bound (admin nil when off); nil: nothing
	site     fs.FS                        // pages served at /; nil: none
}

// serve runs the proxy until ctx is done, then shuts down gracefully:
// PATCHes in flight may finish within the shutdown timeout; after it they
// are stopped, their offsets recorded, and the process exits 0.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts serveOptions) error {
	shared, err := openState(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer shared.close()
	registry := proxy.NewRegistry(version)
	svc, err := proxy.New(cfg, proxy.Deps{Store: shared.store, Locker: shared.locker, Limiter: shared.limiter, Logger: logger, Site: opts.site, Metrics: registry})
	if err != nil {
		return err
	}
	defer svc.Close()
	cert, err := loadCertificate(cfg)
	if err != nil {
		return err
	}
	// Bind before serving, so a taken port is an error at start.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	adminAddr, stopAdmin, err := startAdmin(cfg, svc.AdminHandler(registry), logger)
	if err != nil {
		ln.Close()
		return err
	}
	// Closed last, so /readyz tells the load balancer about the shutdown
	// while uploads drain, and after TUSPROXY_METRICS_LINGER (below), so
	// the drain's last counters are scraped.
	defer stopAdmin()
	srv := newServer(svc, logger, cfg.ReadHeaderTimeout, cfg.MaxHeaderBytes)
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSweep()
	go svc.Run(sweepCtx)

	serveErr := make(chan error, 1)
	go func() {
		if cert != nil {
			srv.TLSConfig.Certificates = []tls.Certificate{*cert}
			serveErr <- srv.ServeTLS(ln, "", "")
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	// auth says at a glance who may upload: anonymous, auth hook, JWT or
	// JWT + hook.
	attrs := []any{slog.String("addr", ln.Addr().String()), slog.String("version", version), slog.String("auth", cfg.AuthMode()),
		slog.String("config", cfg.String())}
	if adminAddr != nil {
		attrs = append(attrs, slog.String("admin_addr", adminAddr.String()))
	}
	logger.Info("tusproxy listening", attrs...)
	if opts.onListen != nil {
		opts.onListen(ln.Addr(), adminAddr)
	}

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	shutdown(cfg, svc, srv, logger)
	if adminAddr != nil && cfg.MetricsLinger > 0 {
		// The public listener is closed; the admin one (deferred
		// stopAdmin) serves a little longer, so Prometheus scrapes the
		// drain's last seconds: its final 503s and accepted bytes.
		logger.Info("admin listener serving the last scrapes", slog.Duration("linger", cfg.MetricsLinger))
		time.Sleep(cfg.MetricsLinger)
	}
	return nil
}

// loadCertificate reads the TLS certificate and key, nil when the proxy
// serves plain HTTP.
func loadCertificate(cfg *config.Config) (*tls.Certificate, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("TUSPROXY_TLS_CERT_FILE/TUSPROXY_TLS_KEY_FILE: %w", err)
	}
	return &cert, nil
}

// startAdmin serves the admin handler (metrics, readiness) on its own
// listener, when one is configured: addr is then where it listens, and
// stop closes it. Without one, addr is nil and stop does nothing.
func startAdmin(cfg *config.Config, handler http.Handler, logger *slog.Logger) (addr net.Addr, stop func(), err error) {
	if cfg.MetricsListen == "" {
		return nil, func() {}, nil
	}
	adminLn, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, nil, fmt.Errorf("admin listener (TUSPROXY_METRICS_LISTEN): %w", err)
	}
	admin := newServer(handler, logger, cfg.ReadHeaderTimeout, cfg.MaxHeaderBytes)
	go func() {
		if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener failed", slog.String("error", err.Error()))
		}
	}()
	return adminLn.Addr(), func() { _ = admin.Close() }, nil
}

// uploads is what shutdown asks of the proxy: refuse new uploads (Drain),
// stop those still streaming (Abort), and give webhook deliveries in flight
// the time left (FinishWebhooks).
type uploads interface {
	Drain()
	Abort()
	FinishWebhooks(ctx context.Context) error
}

// shutdown stops srv gracefully: new uploads are refused while those in
// flight get cfg.ShutdownTimeout to finish; then the rest are stopped.
func shutdown(cfg *config.Config, svc uploads, srv *http.Server, logger *slog.Logger) {
	logger.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
	svc.Drain()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Time is up: stop the PATCHes still streaming. Each records what
		// the upstream kept and answers 503, which needs a moment more.
		logger.Warn("shutdown timeout reached; stopping uploads in flight")
		svc.Abort()
		drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.UpstreamTimeout+5*time.Second)
		defer cancelDrain()
		if err := srv.Shutdown(drainCtx); err != nil {
			_ = srv.Close()
		}
	}
	// Events of the uploads that just finished are in the outbox already;
	// what cannot be delivered in the time left stays there for the next
	// start.
	if err := svc.FinishWebhooks(shutdownCtx); err != nil {
		logger.Warn("shutdown timeout reached; webhook deliveries in flight stay pending")
	}
	logger.Info("stopped")
}

// emulator is a running Kinescope emulator.
type emulator struct {
	url      string // http://host:port
	serveErr chan error
	stop     func()
}

// startEmulator serves the Kinescope emulator on the configured address.
func startEmulator(cfg *config.Config, logger *slog.Logger) (*emulator, error) {
	emu, err := kinescopetest.New(kinescopetest.Options{Token: cfg.EmulatorToken, Dir: cfg.EmulatorDir, Logger: logger})
	if err != nil {
		return nil, err
	}
	emu.SetFaults(cfg.EmulatorFaults)
	ln, err := net.Listen("tcp", cfg.EmulatorListen)
	if err != nil {
		emu.Close()
		return nil, err
	}
	srv := newServer(emu, logger, 10*time.Second, 64<<10)
	// A wildcard address (":9000") becomes 127.0.0.1: the URL is dialled
	// by the proxy and named in the endpoints the emulator issues.
	e := &emulator{url: "http://" + displayAddr(ln.Addr()), serveErr: make(chan error, 1)}
	go func() { e.serveErr <- srv.Serve(ln) }()
	e.stop = func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		emu.Close()
	}
	return e, nil
}

// runEmulator serves the Kinescope emulator alone.
func runEmulator(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer) error {
	emu, err := startEmulator(cfg, logger)
	if err != nil {
		return err
	}
	defer emu.stop()
	fmt.Fprintf(stdout, "Kinescope emulator listening on %s (init: %s/v2/init; faults: %s)\n", emu.url, emu.url, cfg.EmulatorFaults)
	select {
	case err := <-emu.serveErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// runDev runs the emulator and the proxy in one process: a working tus
// endpoint on a fresh machine, with no Kinescope account.
func runDev(ctx context.Context, cfg *config.Config, logger *slog.Logger, stdout io.Writer) error {
	emu, err := startEmulator(cfg, logger)
	if err != nil {
		return err
	}
	defer emu.stop()
	emuURL := emu.url
	cfg.InitURL = emuURL + "/v2/init"
	// The emulator issues endpoints on its own address: allow exactly that
	// host:port, not every port of the loopback host.
	cfg.UpstreamHosts = append(cfg.UpstreamHosts, strings.TrimPrefix(emuURL, "http://"))
	if cfg.APIToken == "" {
		cfg.APIToken = cfg.EmulatorToken
	}
	onListen := func(addr, adminAddr net.Addr) {
		base := cfg.PublicURL
		if base == "" {
			base = "http://" + displayAddr(addr)
		}
		fmt.Fprintf(stdout, `
tusproxy dev is running (Kinescope emulator: %s).

  Open in a browser to upload:    %s/
  Upload with any tus client to:  %s%s
  Seed flow (endpoint answered):  %s%s
%s%s  What the emulator received:     curl -s -H 'Authorization: Bearer %s' %s/v2/emulator/videos
  Switch emulator faults:         curl -X PUT %s/v2/emulator/faults -H 'Authorization: Bearer %s' \
                                    -d 'cut-patch-every=3,cut-patch-after=256KiB,fail-every=5'

Try it:
  head -c 5000000 /dev/urandom > /tmp/video.bin
  curl -si -X POST %s%s -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 5000000' \
    -H "Upload-Metadata: filename $(printf video.bin | base64)"
  curl -si -X PATCH <Location from above> -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
    -H 'Content-Type: application/offset+octet-stream' --data-binary @/tmp/video.bin

`, emuURL, base, base, cfg.BasePath, base, cfg.SeedPath, metricsLine(adminAddr), webhookLine(cfg), cfg.EmulatorToken, emuURL, emuURL, cfg.EmulatorToken, base, cfg.BasePath)
	}
	return serve(ctx, cfg, logger, serveOptions{onListen: onListen, site: browser.Files})
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// webhookLine names where lifecycle events go, without the URL's user
// info or query, which may hold a credential of the receiver's.
func webhookLine(cfg *config.Config) string {
	u, err := url.Parse(cfg.WebhookURL)
	if !cfg.WebhooksEnabled() || err != nil {
		return ""
	}
	return fmt.Sprintf("  Webhooks (signed) are sent to:  %s://%s%s\n", u.Scheme, u.Host, u.Path)
}

// metricsLine is dev's line about the admin listener, empty when it is off.
func metricsLine(adminAddr net.Addr) string {
	if adminAddr == nil {
		return ""
	}
	return fmt.Sprintf("  Metrics (Prometheus):           http://%s/metrics\n", displayAddr(adminAddr))
}
