package kinescopetest

import (
	"encoding/json"
	"net/http"
)

// Error codes of Kinescope's API. The first four are Kinescope's documented
// ones; Kinescope documents no others, so the rest are the emulator's own,
// chosen as status*1000 so that nobody mistakes them for real codes.
const (
	codeUnauthorized = 100102 // UNAUTHORIZED
	codeAccessDenied = 100103 // ACCESS_DENIED
	codeLimitReached = 100106 // LIMIT_REACHED
	codeJSONSyntax   = 400101 // JSON_SYNTAX_ERROR
	codeBadRequest   = 400000 // emulator's own: a well-formed body that fails validation
	codeNotFound     = 404000 // emulator's own
	codeNotAllowed   = 405000 // emulator's own
	codeTooLarge     = 413000 // emulator's own
	codeInternal     = 500000 // emulator's own
)

// apiErrorBody is Kinescope's error shape:
// {"error":{"code":<int>,"message":"...","detail":"..."}}.
type apiErrorBody struct {
	Error apiError `json:"error"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"detail"`
}

// apiErrorFor picks the code and message Kinescope would send with status, for
// answers forced by Faults.InitStatus.
func apiErrorFor(status int) (code int, message string) {
	switch {
	case status == http.StatusUnauthorized:
		return codeUnauthorized, "Unauthorized"
	case status == http.StatusForbidden:
		return codeAccessDenied, "Access denied"
	case status == http.StatusPaymentRequired:
		return codeLimitReached, "Limit reached"
	case status == http.StatusBadRequest:
		return codeJSONSyntax, "JSON syntax error"
	case status >= 500:
		return codeInternal, "Internal error"
	default:
		message = http.StatusText(status)
		if message == "" {
			message = "Error"
		}
		return status * 1000, message
	}
}

// writeAPIError is the one place that writes Kinescope-shaped errors.
func writeAPIError(w http.ResponseWriter, status, code int, message, detail string) {
	writeJSON(w, status, apiErrorBody{Error: apiError{Code: code, Message: message, Detail: detail}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the emulator's own types reach here; they always marshal.
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":500000,"message":"Internal error","detail":"encoding the answer failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
