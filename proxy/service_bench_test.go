package proxy_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/config"
	"github.com/kinescope-tools/tusproxy/proxy"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/proxy/state"
)

// Benchmarks of tusproxy's request paths, end to end on loopback: a client,
// the Service behind an httptest server, and the Kinescope emulator in
// discard mode (tusd hashing the bytes, keeping none) as the upstream. Each
// runs with the in-memory store and with bbolt, whose fsync per write is
// part of the cost in production. Compare before and after a change with
//
//	go test -run '^$' -bench . -count 10 ./proxy > old.txt   (change, then new.txt)
//	benchstat old.txt new.txt
//
// bench/ measures the same paths as a real process against a direct upload
// and a plain reverse proxy.

// benchProxy is a tusproxy Service in front of a discard-mode emulator.
type benchProxy struct {
	base   string // tus creation URL
	client *http.Client
}

var benchStores = []string{"memory", "bolt"}

func newBenchProxy(b *testing.B, store string) *benchProxy {
	b.Helper()
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: testToken, Discard: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emu.Close)
	environ := map[string]string{
		"KINESCOPE_API_TOKEN":     testToken,
		"KINESCOPE_PARENT_ID":     "bench",
		"KINESCOPE_INIT_URL":      emu.InitURL,
		"TUSPROXY_UPSTREAM_HOSTS": strings.TrimPrefix(emu.URL, "http://"),
		// Serve requires an auth decision and limits anonymous creations
		// since issue 11; a benchmark measures neither.
		"TUSPROXY_AUTH":        "none",
		"TUSPROXY_CREATE_RATE": "0",
	}
	cfg, err := config.Load("serve", nil, func(k string) string { return environ[k] }, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	var st state.Store = state.NewMemory()
	if store == "bolt" {
		if st, err = state.OpenBolt(filepath.Join(b.TempDir(), "state.db")); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { _ = st.Close() })
	svc, err := proxy.New(cfg, proxy.Deps{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	b.Cleanup(srv.Close)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	b.Cleanup(transport.CloseIdleConnections)
	return &benchProxy{base: srv.URL + cfg.BasePath, client: &http.Client{Transport: transport}}
}

// create starts an upload of length bytes and returns its URL.
func (p *benchProxy) create(b *testing.B, length int64) string {
	req, _ := http.NewRequest(http.MethodPost, p.base, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(length, 10))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("bench.mp4")))
	resp, err := p.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("create: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// BenchmarkCreate measures one tus creation: parsing, Kinescope's init (the
// emulator's), the store write and the answer.
func BenchmarkCreate(b *testing.B) {
	for _, store := range benchStores {
		b.Run(store, func(b *testing.B) {
			p := newBenchProxy(b, store)
			b.ReportAllocs()
			for b.Loop() {
				p.create(b, 1<<20)
			}
		})
	}
}

// BenchmarkCreateParallel is BenchmarkCreate from many clients at once:
// where store writes are serialised, it shows.
func BenchmarkCreateParallel(b *testing.B) {
	for _, store := range benchStores {
		b.Run(store, func(b *testing.B) {
			p := newBenchProxy(b, store)
			b.SetParallelism(16)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.create(b, 1<<20)
				}
			})
		})
	}
}

// BenchmarkPatch measures PATCHes of one upload in a row, each forwarded as
// one upstream PATCH (the default upstream chunk size, 0, never splits):
// lock, store read, the copy loop, the upstream round trip and the store
// write (which bbolt commits in the background, see state.Bolt).
func BenchmarkPatch(b *testing.B) {
	for _, store := range benchStores {
		for _, size := range []int{256 << 10, 8 << 20} {
			b.Run(fmt.Sprintf("%s/%dKiB", store, size>>10), func(b *testing.B) {
				p := newBenchProxy(b, store)
				uploadURL := p.create(b, 1<<40)
				chunk := make([]byte, size)
				var offset int64
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					req, _ := http.NewRequest(http.MethodPatch, uploadURL, io.NopCloser(bytes.NewReader(chunk)))
					req.ContentLength = int64(size)
					req.Header.Set("Tus-Resumable", "1.0.0")
					req.Header.Set("Content-Type", "application/offset+octet-stream")
					req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
					resp, err := p.client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						b.Fatalf("PATCH at %d: status %d", offset, resp.StatusCode)
					}
					offset += int64(size)
				}
			})
		}
	}
}

// BenchmarkHead measures HEAD: lock, store read, the upstream HEAD.
func BenchmarkHead(b *testing.B) {
	for _, store := range benchStores {
		b.Run(store, func(b *testing.B) {
			p := newBenchProxy(b, store)
			uploadURL := p.create(b, 1<<20)
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodHead, uploadURL, nil)
				req.Header.Set("Tus-Resumable", "1.0.0")
				resp, err := p.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("HEAD: status %d", resp.StatusCode)
				}
			}
		})
	}
}
