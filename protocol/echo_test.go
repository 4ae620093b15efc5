package protocol

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServerTextIsPrintable: a hostile server's error text reaches the
// user's terminal without escapes or line breaks, and cut short.
func TestServerTextIsPrintable(t *testing.T) {
	body := `{"error":"bad\u001b[2J\r\nthing` + strings.Repeat("x", 5000) + `","reason":"r\u0007"}`
	rec := httptest.NewRecorder()
	rec.WriteHeader(http.StatusBadRequest)
	io.WriteString(rec, body)
	resp := rec.Result()
	resp.Request = httptest.NewRequest("POST", "https://psi.example/v1/sessions", nil)
	var se *StatusError
	if err := readStatusError(resp); !errors.As(err, &se) {
		t.Fatalf("got %v", err)
	}
	if strings.ContainsAny(se.Message+se.Reason, "\x1b\r\n\x07") || len(se.Message) > 310 || se.Reason != "r" {
		t.Fatalf("message %q (%d bytes), reason %q", se.Message, len(se.Message), se.Reason)
	}
}

// TestServerURLErrorsHideSecrets: a --server with a password or a query is
// refused without showing either.
func TestServerURLErrorsHideSecrets(t *testing.T) {
	for _, s := range []string{"https://user:hunter2@psi.example", "https://psi.example/?token=hunter2", "ftp://u:hunter2@psi.example", "https://psi.example/#hunter2"} {
		err := CheckServerURL(s)
		if !errors.Is(err, ErrServerURL) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: %v", s, err)
		}
	}
}
