package kinescopetest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	expslog "golang.org/x/exp/slog"
)

// Paths of the emulator's routes. Kinescope serves the first two; the videos
// route is the emulator's own.
const (
	initPath   = "/v2/init"
	uploadPath = "/v2/upload"
	videosPath = "/v2/emulator/videos"
)

// Options configure an [Emulator].
type Options struct {
	// Token is the API token POST /v2/init requires as "Authorization: Bearer
	// <Token>". Required: New fails when it is empty.
	Token string
	// Dir is where upload bytes are kept (tusd's filestore layout, plus one
	// <upload id>.kinescope.json file per video so that a later emulator on the
	// same Dir knows the videos again). Default "": a temporary directory that
	// Close removes.
	Dir string
	// PublicURL is the base URL of issued endpoints, e.g.
	// "http://127.0.0.1:9000" (a trailing slash is dropped). The emulator
	// itself always serves /v2/upload/...: a path in PublicURL is for a
	// reverse proxy in front of it. Default "": derived from each init
	// request, http (https when the request came over TLS) and its Host.
	PublicURL string
	// Logger receives the emulator's own log lines: never the token. Default
	// nil: discard.
	Logger *slog.Logger
	// Discard keeps no upload bytes: only each upload's offset and a running
	// SHA-256 of what it received, in memory. Meant for load tests, where
	// the disk must not be the bottleneck; [Emulator.SHA256] works as usual,
	// [Emulator.Data] fails with [ErrDiscarded]. Dir is not used, and
	// nothing survives Close.
	Discard bool
}

// uploadStore is what the emulator needs of its tusd store: tusd's
// filestore, or a discardStore in discard mode.
type uploadStore interface {
	handler.DataStore
	handler.TerminaterDataStore
}

// Stats counts the requests an [Emulator] has received since it was created.
type Stats struct {
	// Init counts every request to /v2/init, refused, delayed and dropped ones
	// included.
	Init int
	// Head, Patch and Delete count tus requests by their effective method
	// (X-HTTP-Method-Override included), whatever their answer.
	Head, Patch, Delete int
}

// Emulator is an http.Handler that behaves like Kinescope's uploader. Create it
// with [New]; it is safe for concurrent use.
type Emulator struct {
	token     string
	publicURL string
	dir       string
	ownsDir   bool
	log       *slog.Logger
	store     uploadStore
	discard   *discardStore // the store in discard mode; nil otherwise
	tus       http.Handler
	turns     uploadTurns // one request per upload inside tusd; see serialize.go

	initCount, headCount, patchCount, deleteCount atomic.Int64

	faultMu   sync.Mutex
	faults    Faults
	tusSeen   int // HEAD, PATCH and DELETE requests since the last SetFaults
	patchSeen int // PATCH requests since the last SetFaults

	mu       sync.Mutex
	videos   []*Video // in creation order
	byID     map[string]*Video
	byUpload map[string]*Video

	lifeMu   sync.Mutex
	closed   bool
	inflight sync.WaitGroup
}

// New returns an Emulator configured by opts. Close it to release its storage.
func New(opts Options) (*Emulator, error) {
	if opts.Token == "" {
		return nil, errors.New("kinescopetest: Options.Token is required")
	}
	publicURL := strings.TrimRight(opts.PublicURL, "/")
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("kinescopetest: Options.PublicURL must be an absolute http or https URL")
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	dir, ownsDir := opts.Dir, false
	if opts.Discard {
		dir = ""
	} else if dir == "" {
		tmp, err := os.MkdirTemp("", "kinescopetest-")
		if err != nil {
			return nil, fmt.Errorf("kinescopetest: create storage directory: %w", err)
		}
		dir, ownsDir = tmp, true
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("kinescopetest: create storage directory: %w", err)
	}

	e := &Emulator{
		token:     opts.Token,
		publicURL: publicURL,
		dir:       dir,
		ownsDir:   ownsDir,
		log:       logger,
		byID:      make(map[string]*Video),
		byUpload:  make(map[string]*Video),
	}
	if opts.Discard {
		e.discard = newDiscardStore()
		e.store = e.discard
	} else {
		e.store = filestore.New(dir)
	}

	composer := handler.NewStoreComposer()
	composer.UseCore(e.store)
	composer.UseTerminater(e.store)
	memorylocker.New().UseIn(composer)
	tusd, err := handler.NewHandler(handler.Config{
		StoreComposer: composer,
		// Only used by tusd to build Location on creation, which the emulator
		// refuses; kept right so that nothing surprising leaks out of tusd.
		BasePath:        uploadPath + "/",
		DisableDownload: true,
		// tusd logs upload ids (the secret part of an endpoint) on every
		// request and wants x/exp/slog, not log/slog: the emulator logs on its
		// own instead, without ids of uploads.
		Logger: expslog.New(expslog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		e.removeOwnedDir()
		return nil, fmt.Errorf("kinescopetest: tus handler: %w", err)
	}
	e.tus = http.StripPrefix(uploadPath, tusd)

	if err := e.loadVideos(); err != nil {
		e.removeOwnedDir()
		return nil, err
	}
	return e, nil
}

// ServeHTTP routes a request to the emulator's routes. Every answer carries a
// fresh X-Request-ID header.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-ID", newUUID())
	if !e.enter() {
		writeAPIError(w, http.StatusServiceUnavailable, codeInternal, "Service unavailable", "the emulator is closed")
		return
	}
	defer e.inflight.Done()

	// Every route of the emulator is here, so the whole surface reads at once.
	// A switch rather than http.ServeMux: the mux would redirect /v2/upload
	// and clean paths, which a tus client must never see.
	switch path := r.URL.Path; {
	case path == initPath:
		e.handleInit(w, r)
	case path == uploadPath || strings.HasPrefix(path, uploadPath+"/"):
		e.handleTus(w, r)
	case path == videosPath:
		e.handleVideoList(w, r)
	case path == faultsPath:
		e.handleFaults(w, r)
	case strings.HasPrefix(path, videosPath+"/"):
		e.handleVideo(w, r, strings.TrimPrefix(path, videosPath+"/"))
	default:
		writeAPIError(w, http.StatusNotFound, codeNotFound, "Not found", "no such route")
	}
}

// Stats reports how many requests of each kind the emulator has received.
func (e *Emulator) Stats() Stats {
	return Stats{
		Init:   int(e.initCount.Load()),
		Head:   int(e.headCount.Load()),
		Patch:  int(e.patchCount.Load()),
		Delete: int(e.deleteCount.Load()),
	}
}

// Close stops accepting requests (later ones are answered 503), waits for the
// requests in flight and removes the storage directory when the emulator
// created it. Stop the http.Server in front of the emulator first, or Close
// waits for its uploads to end. Close is idempotent.
func (e *Emulator) Close() error {
	e.lifeMu.Lock()
	if e.closed {
		e.lifeMu.Unlock()
		return nil
	}
	e.closed = true
	e.lifeMu.Unlock()

	e.inflight.Wait()
	return e.removeOwnedDir()
}

// enter registers a request in flight; false once the emulator is closed.
// Add happens under lifeMu and never after closed is set, so it cannot race
// with the Wait in Close.
func (e *Emulator) enter() bool {
	e.lifeMu.Lock()
	defer e.lifeMu.Unlock()
	if e.closed {
		return false
	}
	e.inflight.Add(1)
	return true
}

func (e *Emulator) removeOwnedDir() error {
	if !e.ownsDir {
		return nil
	}
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("kinescopetest: remove storage directory: %w", err)
	}
	return nil
}
