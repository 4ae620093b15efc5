package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
)

// maxEpochs bounds the epoch states (key and set) a server keeps for the
// sessions opened with them, whatever the reload rate.
const maxEpochs = 8

// recentEpoch is an epoch state sessions were opened with, and when the
// last one was.
type recentEpoch struct {
	st       *epochState
	lastOpen time.Time
}

// remember notes that a session is being opened with st. A state is kept
// while a session opened with it may still run (SessionTTL after the last
// opening), the newest maxEpochs at most.
func (s *Server) remember(st *epochState) {
	now := s.now()
	s.epochsMu.Lock()
	defer s.epochsMu.Unlock()
	s.epochs = slices.DeleteFunc(s.epochs, func(r recentEpoch) bool {
		return r.st == st || now.Sub(r.lastOpen) > s.cfg.SessionTTL
	})
	s.epochs = append(s.epochs, recentEpoch{st: st, lastOpen: now})
	if len(s.epochs) > maxEpochs {
		s.epochs = slices.Delete(s.epochs, 0, len(s.epochs)-maxEpochs)
	}
}

// epochFor returns the epoch state that serves a session recorded with
// epoch id and, for its mode, the set digest; nil if this server holds none
// (another replica built a different set, or this one restarted into a
// later epoch).
func (s *Server) epochFor(id string, mode psi.Mode, digest string) *epochState {
	match := func(st *epochState) bool {
		if st == nil || st.id != id {
			return false
		}
		_, d := st.setFor(mode)
		return d == digest
	}
	if cur := s.current.Load(); match(cur) {
		return cur
	}
	s.epochsMu.Lock()
	defer s.epochsMu.Unlock()
	for i := len(s.epochs) - 1; i >= 0; i-- {
		if match(s.epochs[i].st) {
			return s.epochs[i].st
		}
	}
	return nil
}

// errSetUnavailable answers a request of a session whose set this replica
// does not hold: retryable, on this replica once it has built the set or on
// another.
func errSetUnavailable(epoch string) *apiError {
	e := errorf(http.StatusServiceUnavailable, "set_unavailable", "this server does not hold the set of the session's epoch %s (it is building it, or another replica built a different one); retry", epoch)
	e.retryAfter = 5 * time.Second
	return e
}

// stateUnavailable answers a request the state store could not serve.
func (s *Server) stateUnavailable(err error) *apiError {
	s.log.Error("the state store failed", "err", err)
	e := errorf(http.StatusServiceUnavailable, "state_unavailable", "the server cannot reach its state store; nothing was reserved or evaluated, retry later")
	e.retryAfter = 5 * time.Second
	return e
}

// fileStamp identifies a version of a file for change detection.
type fileStamp struct {
	size    int64
	modTime time.Time
	ok      bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), ok: true}
}

// reloadAdvertisersIfChanged re-reads the advertisers file when it changed
// since it was last read: the reload interval's check, so that 'psimatch
// advertiser revoke' takes effect without a signal.
func (s *Server) reloadAdvertisersIfChanged() {
	stamp := stampOf(s.cfg.Advertisers)
	s.regMu.RLock()
	same := stamp == s.regStamp
	s.regMu.RUnlock()
	if same || !stamp.ok {
		return
	}
	if err := s.ReloadAdvertisers(); err != nil {
		s.log.Error("re-reading the advertisers; the previous ones stay", "err", err)
		return
	}
	s.log.Info("advertisers reloaded", "path", s.cfg.Advertisers)
}

// batchSize reads the batch's element count from the Psimatch-Elements
// header, which is required: it is reserved before the body is read.
func (s *Server) batchSize(r *http.Request, size int) (int, *apiError) {
	h := r.Header.Get(protocol.HeaderElements)
	if h == "" {
		return 0, errorf(http.StatusBadRequest, "count_missing", "the %s header is required: the number of %d-byte elements in the body", protocol.HeaderElements, size)
	}
	n, err := strconv.Atoi(h)
	if err != nil || n <= 0 || h[0] == '+' {
		return 0, errorf(http.StatusBadRequest, "count_mismatch", "%s must be a positive number of elements", protocol.HeaderElements)
	}
	if n > s.cfg.MaxBatch {
		return 0, errorf(http.StatusRequestEntityTooLarge, "too_large", "%s is %d; the limit is %d elements of %d bytes", protocol.HeaderElements, n, s.cfg.MaxBatch, size)
	}
	if r.ContentLength >= 0 && r.ContentLength != int64(n)*int64(size) {
		return 0, errorf(http.StatusBadRequest, "count_mismatch", "%s says %d elements (%d bytes) but the body has %d bytes", protocol.HeaderElements, n, n*size, r.ContentLength)
	}
	return n, nil
}

// readBatch reads exactly n elements of size bytes: never more, whatever
// the client sends.
func readBatch(w http.ResponseWriter, r *http.Request, n, size int) ([]byte, *apiError) {
	body := make([]byte, n*size)
	lr := http.MaxBytesReader(w, r.Body, int64(len(body)))
	if _, err := io.ReadFull(lr, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, errorf(http.StatusBadRequest, "count_mismatch", "%s says %d elements but the body is shorter than %d bytes", protocol.HeaderElements, n, len(body))
		}
		return nil, errorf(http.StatusBadRequest, "read_error", "reading the body: %v", err)
	}
	var one [1]byte
	if k, err := lr.Read(one[:]); k > 0 || err != nil && err != io.EOF {
		return nil, errorf(http.StatusBadRequest, "count_mismatch", "%s says %d elements but the body is longer than %d bytes", protocol.HeaderElements, n, len(body))
	}
	return body, nil
}

// duplicateElement finds two equal elements in a batch. An honest client's
// blinded elements are distinct (each has a fresh random blind), so a
// repeat can only come from a client that chose its blinds.
func duplicateElement(body []byte, size int) (i, j int, dup bool) {
	n := len(body) / size
	idx := make([]int32, n)
	for k := range idx {
		idx[k] = int32(k)
	}
	el := func(k int32) []byte { return body[int(k)*size : int(k+1)*size] }
	slices.SortFunc(idx, func(a, b int32) int { return bytes.Compare(el(a), el(b)) })
	for k := 1; k < n; k++ {
		if bytes.Equal(el(idx[k-1]), el(idx[k])) {
			a, b := int(idx[k-1]), int(idx[k])
			return min(a, b), max(a, b), true
		}
	}
	return 0, 0, false
}
