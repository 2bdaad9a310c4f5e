// Package faultspec holds the faults the Kinescope emulator can inject and
// their text form, the spec of `tusproxy emulator -emulator-faults` and of PUT
// /v2/emulator/faults. It is apart from the emulator so that the production
// configuration can check a spec without importing the emulator, and with it
// tusd's stores.
package faultspec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Faults make the Kinescope emulator (package kinescopetest) misbehave on
// purpose. The zero value injects none.
type Faults struct {
	// InitStatus, when not 0, makes /v2/init answer this status with a
	// Kinescope-shaped error body (401 -> 100102 Unauthorized, 403 -> 100103
	// Access denied, 402 -> 100106 Limit reached, 400 -> 400101, 5xx -> 500000)
	// or with InitBody when that is set. No video is created.
	InitStatus int
	// InitBody is the raw body sent with InitStatus, so tests can send garbage
	// JSON, even with status 201. Ignored when InitStatus is 0.
	InitBody string
	// InitDrop makes /v2/init close the connection without answering and
	// without creating a video.
	InitDrop bool
	// InitDelay is slept before /v2/init is handled. A client that gives up
	// meanwhile gets nothing and no video is created.
	InitDelay time.Duration
	// InitEndpoint, when set, rewrites the endpoint of successful init answers
	// (to issue http:// or foreign-host endpoints, or to point clients at a
	// fault-injecting proxy). The video's Endpoint is the rewritten one.
	InitEndpoint func(endpoint string) string

	// CutPatchEvery, when > 0, cuts every Nth PATCH (the Nth, 2Nth, ... counted
	// since SetFaults): after CutPatchAfter body bytes the emulator keeps those
	// bytes, as a real server does, and closes the TCP connection without any
	// answer. A PATCH whose body is shorter than CutPatchAfter is not cut; one
	// of exactly CutPatchAfter bytes is cut after all of them are stored (the
	// answer is lost). A PATCH refused before its body is read (409, 412,
	// 413...) is answered as usual, and one chosen by FailEvery is failed, not
	// cut.
	CutPatchEvery int
	// CutPatchAfter is the number of body bytes a cut PATCH keeps.
	CutPatchAfter int64

	// FailEvery, when > 0, answers every Nth tus request (HEAD, PATCH and
	// DELETE counted together since SetFaults) with FailStatus before it
	// touches the upload.
	FailEvery int
	// FailStatus is the status of failed tus requests. Default 503.
	FailStatus int

	// Latency is added before every tus answer and every init answer.
	Latency time.Duration
	// WrongOffset makes successful PATCH answers carry Upload-Offset + 1, as a
	// lying upstream would. HEAD still tells the truth.
	WrongOffset bool
}

// Parse reads faults from a spec such as
//
//	cut-patch-every=3,cut-patch-after=256KiB,fail-every=5,fail-status=503,latency=20ms
//
// the form of `tusproxy emulator -emulator-faults` and of PUT
// /v2/emulator/faults. Keys, each at most once:
//
//	init-status=N        Faults.InitStatus
//	init-delay=DURATION  Faults.InitDelay
//	init-drop            Faults.InitDrop
//	cut-patch-every=N    Faults.CutPatchEvery
//	cut-patch-after=SIZE Faults.CutPatchAfter (bytes, or with KiB/MiB/GiB)
//	fail-every=N         Faults.FailEvery
//	fail-status=N        Faults.FailStatus
//	latency=DURATION     Faults.Latency
//	wrong-offset         Faults.WrongOffset
//
// An empty spec, or "none", injects no faults. InitBody and InitEndpoint are
// for Go tests only and have no key.
func Parse(spec string) (Faults, error) {
	var f Faults
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "none" {
		return f, nil
	}
	seen := map[string]bool{}
	for item := range strings.SplitSeq(spec, ",") {
		key, val, hasVal := strings.Cut(strings.TrimSpace(item), "=")
		if seen[key] {
			return Faults{}, fmt.Errorf("fault %q given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "init-status":
			f.InitStatus, err = faultStatus(val)
		case "init-delay":
			f.InitDelay, err = faultDuration(val)
		case "init-drop":
			f.InitDrop, err = faultFlag(val, hasVal)
		case "cut-patch-every":
			f.CutPatchEvery, err = faultCount(val)
		case "cut-patch-after":
			f.CutPatchAfter, err = faultSize(val)
		case "fail-every":
			f.FailEvery, err = faultCount(val)
		case "fail-status":
			f.FailStatus, err = faultStatus(val)
		case "latency":
			f.Latency, err = faultDuration(val)
		case "wrong-offset":
			f.WrongOffset, err = faultFlag(val, hasVal)
		case "":
			return Faults{}, errors.New("empty fault in spec")
		default:
			return Faults{}, fmt.Errorf("unknown fault %q (known: init-status, init-delay, init-drop, "+
				"cut-patch-every, cut-patch-after, fail-every, fail-status, latency, wrong-offset)", key)
		}
		if err != nil {
			return Faults{}, fmt.Errorf("fault %s: %w", key, err)
		}
	}
	if f.CutPatchAfter > 0 && f.CutPatchEvery == 0 {
		return Faults{}, errors.New("fault cut-patch-after needs cut-patch-every")
	}
	if f.FailStatus != 0 && f.FailEvery == 0 {
		return Faults{}, errors.New("fault fail-status needs fail-every")
	}
	return f, nil
}

// String is the spec of f that Parse reads back, "none" for no faults.
// InitBody and InitEndpoint have no key and are left out.
func (f Faults) String() string {
	var parts []string
	add := func(key string, set bool, val string) {
		if set {
			parts = append(parts, key+val)
		}
	}
	add("init-status=", f.InitStatus != 0, strconv.Itoa(f.InitStatus))
	add("init-delay=", f.InitDelay != 0, f.InitDelay.String())
	add("init-drop", f.InitDrop, "")
	add("cut-patch-every=", f.CutPatchEvery != 0, strconv.Itoa(f.CutPatchEvery))
	add("cut-patch-after=", f.CutPatchAfter != 0, strconv.FormatInt(f.CutPatchAfter, 10))
	add("fail-every=", f.FailEvery != 0, strconv.Itoa(f.FailEvery))
	add("fail-status=", f.FailStatus != 0, strconv.Itoa(f.FailStatus))
	add("latency=", f.Latency != 0, f.Latency.String())
	add("wrong-offset", f.WrongOffset, "")
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

func faultCount(val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a count of at least 1", val)
	}
	return n, nil
}

func faultStatus(val string) (int, error) {
	n, err := strconv.Atoi(val)
	if err != nil || n < 200 || n > 599 {
		return 0, fmt.Errorf("%q is not an HTTP status (200-599)", val)
	}
	return n, nil
}

func faultDuration(val string) (time.Duration, error) {
	d, err := time.ParseDuration(val)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration such as 250ms", val)
	}
	return d, nil
}

func faultFlag(val string, hasVal bool) (bool, error) {
	if !hasVal {
		return true, nil
	}
	b, err := strconv.ParseBool(val)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", val)
	}
	return b, nil
}

// faultSize reads a byte count, plain or with a binary unit.
func faultSize(val string) (int64, error) {
	mult := int64(1)
	num := val
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(val, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 1 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 65536 or 256KiB", val)
	}
	return n * mult, nil
}
