package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/psimatch/psimatch/protocol"
)

// This file holds the parts of the v1 contract (protocol/README.md) that
// apply to every request: JSON answers for unknown paths and methods, the
// Content-Type of request bodies, and how a JSON request body is read.

// contract wraps the API's mux: a request no route takes is answered with a
// JSON error (404 unknown_path, or 405 method_not_allowed with Allow), and
// a POST whose Content-Type is present and not the one its route reads gets
// 415 unsupported_media_type before anything else is done.
func (s *Server) contract(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			var allow []string
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				probe := r.Clone(r.Context())
				probe.Method = m
				if _, p := mux.Handler(probe); p != "" {
					allow = append(allow, m)
				}
			}
			if len(allow) == 0 {
				s.writeError(w, errorf(http.StatusNotFound, "unknown_path", "no such endpoint (see protocol/README.md for the v1 paths)"))
				return
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "this path takes %s", strings.Join(allow, ", ")))
			return
		}
		if r.Method == http.MethodPost {
			want := protocol.ContentElements
			if r.URL.Path == protocol.PathSessions {
				want = protocol.ContentJSON
			}
			if ct := r.Header.Get("Content-Type"); ct != "" {
				if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != want {
					s.writeError(w, errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "the body must be %s", want))
					return
				}
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// decodeJSON reads one JSON object of at most MaxControlBody bytes into v.
// Unknown fields are ignored (v1 clients and servers may add optional
// fields); a body above the limit is 413 too_large; anything else wrong,
// or data after the object, is 400 malformed.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, protocol.MaxControlBody))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "the request body exceeds %d bytes", protocol.MaxControlBody)
		}
		// Say where, never what: the decoder's message quotes the client's text.
		return errorf(http.StatusBadRequest, "malformed", "the request is not the expected JSON object%s", jsonErrorPlace(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, "too_large", "the request body exceeds %d bytes", protocol.MaxControlBody)
		}
		return errorf(http.StatusBadRequest, "malformed", "the request has data after its JSON object")
	}
	return nil
}

// jsonErrorPlace locates a JSON decoding error without quoting the input:
// the byte offset of a syntax error, or the field of a type error.
func jsonErrorPlace(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf(" (syntax error at byte %d)", se.Offset)
	case errors.As(err, &te) && te.Field != "":
		return fmt.Sprintf(" (field %s has the wrong type; want %s)", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return " (it ends early)"
	}
	return ""
}
