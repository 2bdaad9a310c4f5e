package kinescopetest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kinescope-tools/tusproxy/proxy/kinescopetest"
)

// A test starts an emulator, points the code under test at InitURL with the
// same token, lets it upload, and checks what arrived. Here the "code under
// test" is a few hand-written requests.
func ExampleNewServer() {
	const token = "e51e55a1-7615-493e-9055-10ac9cc44ccd"
	srv, err := kinescopetest.NewServer(kinescopetest.Options{Token: token})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// Make every PATCH lose its connection after 16 bytes: the code under
	// test has to resume.
	srv.SetFaults(kinescopetest.Faults{CutPatchEvery: 1, CutPatchAfter: 16})

	file := []byte("a video, or some bytes standing for one")

	// POST /v2/init, as a backend calls Kinescope.
	req, _ := http.NewRequest(http.MethodPost, srv.InitURL, strings.NewReader(
		fmt.Sprintf(`{"parent_id":"folder-1","type":"video","filename":"clip.mp4","filesize":%d}`, len(file))))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	var answer struct {
		Data struct{ ID, Endpoint string } `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	fmt.Println("init:", resp.StatusCode)

	// tus: HEAD for the offset, PATCH the rest, until done.
	for attempt := 1; ; attempt++ {
		head, _ := http.NewRequest(http.MethodHead, answer.Data.Endpoint, nil)
		head.Header.Set("Tus-Resumable", "1.0.0")
		resp, err := http.DefaultClient.Do(head)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		offset := resp.Header.Get("Upload-Offset")
		if offset == fmt.Sprint(len(file)) {
			break
		}
		var from int
		fmt.Sscan(offset, &from)
		patch, _ := http.NewRequest(http.MethodPatch, answer.Data.Endpoint, bytes.NewReader(file[from:]))
		patch.Header.Set("Tus-Resumable", "1.0.0")
		patch.Header.Set("Content-Type", "application/offset+octet-stream")
		patch.Header.Set("Upload-Offset", offset)
		resp, err = http.DefaultClient.Do(patch)
		if err != nil {
			fmt.Printf("PATCH %d from %s: connection lost\n", attempt, offset)
			continue
		}
		resp.Body.Close()
		fmt.Printf("PATCH %d from %s: %d\n", attempt, offset, resp.StatusCode)
	}

	// What did the emulator receive?
	video, _ := srv.Video(answer.Data.ID)
	sum, _ := srv.SHA256(answer.Data.ID)
	want := sha256.Sum256(file)
	fmt.Println("complete:", video.Complete, "bytes intact:", sum == hex.EncodeToString(want[:]))
	fmt.Println("PATCH requests:", srv.Stats().Patch)

	// Output:
	// init: 201
	// PATCH 1 from 0: connection lost
	// PATCH 2 from 16: connection lost
	// PATCH 3 from 32: 204
	// complete: true bytes intact: true
	// PATCH requests: 3
}
