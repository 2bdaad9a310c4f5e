package kinescopetest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// faultsPath is the emulator's own route to read and switch faults at run
// time: GET answers the spec in effect, PUT replaces it.
const faultsPath = "/v2/emulator/faults"

// maxFaultSpec bounds a PUT body: a spec is a few dozen bytes.
const maxFaultSpec = 4 << 10

// ParseFaults reads faults from a spec such as
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
func ParseFaults(spec string) (Faults, error) {
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

// String is the spec of f that ParseFaults reads back, "none" for no faults.
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

// Faults returns the faults in effect.
func (e *Emulator) Faults() Faults {
	e.faultMu.Lock()
	defer e.faultMu.Unlock()
	return e.faults
}

// handleFaults is GET and PUT /v2/emulator/faults, the emulator's own route:
// tests in other processes (and users trying their client's retries) switch
// faults without restarting the emulator. PUT takes a ParseFaults spec as the
// body and resets the counters, as SetFaults does.
func (e *Emulator) handleFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeAPIError(w, http.StatusMethodNotAllowed, codeNotAllowed, "Method not allowed", "use GET or PUT")
		return
	}
	if !e.authorized(r) {
		writeAPIError(w, http.StatusUnauthorized, codeUnauthorized, "Unauthorized",
			"a valid API token is required as Authorization: Bearer <token>")
		return
	}
	if r.Method == http.MethodPut {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFaultSpec))
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, "Bad request", "the fault spec could not be read")
			return
		}
		f, err := ParseFaults(string(body))
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, codeBadRequest, "Bad request", err.Error())
			return
		}
		e.SetFaults(f)
		e.log.Info("kinescopetest: faults set", "faults", f.String())
	}
	writeJSON(w, http.StatusOK, struct {
		Faults string `json:"faults"`
	}{e.Faults().String()})
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
