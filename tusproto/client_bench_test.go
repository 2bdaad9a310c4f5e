package tusproto_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kinescope-tools/tusproxy/internal/testkit"
	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
	"github.com/kinescope-tools/tusproxy/tusproto"
)

// Benchmarks of the hot paths of the upstream client. Compare before and
// after a change with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./tusproto > old.txt   (change, then new.txt)
//	benchstat old.txt new.txt

// metadataHeader is what tus-js-client sends for a browser file with Uppy's
// usual fields.
const metadataHeader = "relativePath bnVsbA==,name bXkgaG9saWRheSB2aWRlbyAyMDI0LmNvbXBsZXRlLm1wNA==," +
	"type dmlkZW8vbXA0,filetype dmlkZW8vbXA0,filename bXkgaG9saWRheSB2aWRlbyAyMDI0LmNvbXBsZXRlLm1wNA==," +
	"title TXkgaG9saWRheSB2aWRlbw=="

func BenchmarkParseMetadata(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tusproto.ParseMetadata(metadataHeader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMetadataEncode(b *testing.B) {
	m, err := tusproto.ParseMetadata(metadataHeader)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Encode()
	}
}

// benchEndpoint starts the Kinescope emulator in discard mode (tusd's handler
// hashing the bytes, keeping none) and returns a fresh upload endpoint of a
// size no benchmark reaches, and the video id.
func benchEndpoint(b *testing.B) (endpoint, videoID string, emu *kinescopetest.Server) {
	b.Helper()
	const token = "bench-token"
	emu, err := kinescopetest.NewServer(kinescopetest.Options{Token: token, Discard: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emu.Close)
	req, _ := http.NewRequest(http.MethodPost, emu.InitURL,
		strings.NewReader(`{"parent_id":"bench","type":"video","filename":"bench.mp4","filesize":1099511627776}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Data struct {
			ID       string `json:"id"`
			Endpoint string `json:"endpoint"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("init: status %d, %v", resp.StatusCode, err)
	}
	return answer.Data.Endpoint, answer.Data.ID, emu
}

// BenchmarkPatch measures Client.Patch streaming a body to a tusd endpoint
// on loopback: the copy loop every forwarded byte goes through. The body is
// an onlyReader, so the transport copies it as it copies a client's body.
func BenchmarkPatch(b *testing.B) {
	for _, size := range []int{256 << 10, 8 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			endpoint, _, _ := benchEndpoint(b)
			client := benchClient(b)
			chunk := testkit.RandomBytes(size)
			var offset int64
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				newOffset, err := client.Patch(context.Background(), endpoint, offset, onlyReader{bytes.NewReader(chunk)}, int64(size))
				if err != nil {
					b.Fatal(err)
				}
				offset = newOffset
			}
		})
	}
}

// BenchmarkHead measures one HEAD round trip to a tusd endpoint on loopback.
func BenchmarkHead(b *testing.B) {
	endpoint, _, _ := benchEndpoint(b)
	client := benchClient(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Head(context.Background(), endpoint); err != nil {
			b.Fatal(err)
		}
	}
}

// benchClient is a client with a transport of its own.
func benchClient(b *testing.B) *tusproto.Client {
	b.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	b.Cleanup(transport.CloseIdleConnections)
	return &tusproto.Client{HTTP: &http.Client{Transport: transport}, UserAgent: "tusproxy-bench"}
}
