package kinescopetest

import (
	"io"
	"net/http"

	"github.com/kinescope-tools/tusproxy/internal/faultspec"
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
// /v2/emulator/faults; [faultspec.Parse] lists the keys. An empty spec, or
// "none", injects no faults.
func ParseFaults(spec string) (Faults, error) {
	return faultspec.Parse(spec)
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
