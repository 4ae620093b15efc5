package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/psimatch/psimatch/internal/atomicfile"
	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// EstimateConfig configures estimate mode (see psi.EstimateParams).
type EstimateConfig struct {
	// Epsilon is the per-identifier ε the operator grants (default
	// psi.DefaultEstimateEpsilon, ln 3); p follows from it with d = 1/4.
	Epsilon float64
	// Bits pins L. Zero keeps the L in the data directory's estimate state,
	// or chooses it at the first build (psi.EstimateBitsFor). Replicas that
	// do not share a data directory must pin the same Bits.
	Bits uint
	// Version numbers the estimate key (default 1). Raising it re-keys:
	// new randomness, which spends ε again.
	Version uint
}

// estimateRuntime is the server's long-lived estimate key and the cache of
// kept positions carried from build to build.
type estimateRuntime struct {
	mu    sync.Mutex
	root  []byte           // psi.EstimateRoot of the seed; nil: estimate mode unavailable
	key   *psi.EstimateKey // nil until L is known
	cache *psi.EstimateCache
}

// initEstimate takes the estimate root while the master seed is at hand:
// from the seed when the server has one (keeping it in DIR/estimate/root,
// mode 0600, so that a server whose seed has since been erased still has
// it), else from DIR/estimate/root. Without either, estimate sessions are
// refused (estimate_unavailable) and the rest is served.
func (s *Server) initEstimate() error {
	var root []byte
	switch {
	case len(s.cfg.Seed) == psi.SeedSize:
		r, err := psi.EstimateRoot(s.cfg.Seed)
		if err != nil {
			return err
		}
		root = r
		if s.cfg.Dir != nil {
			if old, err := s.cfg.Dir.ReadSecret(s.estimateRootPath(), psi.EstimateRootSize, "estimate root"); err != nil || !bytes.Equal(old, root) {
				if err := os.MkdirAll(filepath.Dir(s.estimateRootPath()), 0o700); err != nil {
					return fmt.Errorf("server: keeping the estimate root: %w", err)
				}
				if err := atomicfile.WriteFile(s.estimateRootPath(), root, 0o600); err != nil {
					return fmt.Errorf("server: keeping the estimate root: %w", err)
				}
			}
		}
	case s.cfg.Dir != nil:
		// Owner, mode and size are checked as for the seed: it is a secret.
		r, err := s.cfg.Dir.ReadSecret(s.estimateRootPath(), psi.EstimateRootSize, "estimate root")
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("server: reading the estimate root: %w", err)
		default:
			root = r
		}
	}
	if root == nil {
		s.log.Warn("no master seed and no estimate root in the data directory: estimate mode is unavailable")
	}
	s.est.root = root
	return nil
}

func (s *Server) estimateRootPath() string {
	return filepath.Join(s.cfg.Dir.Path(), "estimate", "root")
}

// estimateUnavailable refuses an estimate session when the epoch has no
// estimate set (no estimate root).
func estimateUnavailable(mode psi.Mode, st *epochState) *apiError {
	if mode != psi.ModeEstimate || st.est != nil {
		return nil
	}
	e := errorf(http.StatusServiceUnavailable, "estimate_unavailable", "this server has no estimate key (its master seed and estimate root are missing); ask the platform, or use another mode it allows")
	e.retryAfter = time.Hour
	return e
}

// estimateEpoch is the estimate set one epoch state serves.
type estimateEpoch struct {
	key    *psi.EstimateKey
	set    *psi.EstimateSet
	digest string
}

func (c EstimateConfig) withDefaults() EstimateConfig {
	if c.Epsilon == 0 {
		c.Epsilon = psi.DefaultEstimateEpsilon
	}
	if c.Version == 0 {
		c.Version = 1
	}
	return c
}

// estimateKey returns the estimate key for an eligible set of n values: the
// one already made, else one of the pinned or stored L, else one with L
// chosen for n. n < 0 means "not known yet": then it returns nil if L is
// neither pinned nor stored. Without an estimate root it returns nil.
func (s *Server) estimateKey(n int) (*psi.EstimateKey, error) {
	rt := &s.est
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.key != nil || rt.root == nil {
		return rt.key, nil
	}
	cfg := s.cfg.Estimate.withDefaults()
	bits := cfg.Bits
	if bits == 0 {
		if m, _, _, err := s.readEstimateState(); err == nil && m.Epsilon == cfg.Epsilon && m.Version == cfg.Version {
			bits = m.Bits
		}
	}
	if bits == 0 && n < 0 {
		return nil, nil
	}
	pr, err := psi.NewEstimateParams(cfg.Epsilon, max(n, 0), bits, cfg.Version)
	if err != nil {
		return nil, err
	}
	key, err := psi.DeriveEstimateKey(s.cfg.Suite, rt.root, pr)
	if err != nil {
		return nil, err
	}
	rt.key = key
	s.log.Info("estimate key", "label", pr.Label(), "epsilon", pr.Epsilon(), "p", pr.P, "d", pr.D, "bits", pr.Bits)
	return key, nil
}

// estimateBuild is the estimate side of one inventory read: loadEpoch
// hands it every eligible identifier the scan yields.
type estimateBuild struct {
	s        *Server
	b        *psi.EstimateBuilder
	buffered []inventory.Eligible // while L is not known (first build only)
	off      bool                 // no estimate root: nothing to build
}

// startEstimate starts the estimate side of an inventory read. eligible is
// the number of eligible identifiers the read will yield when the caller
// knows it (a counting pass before the build), else -1: then the first build
// under a key with no pinned or stored L holds the eligible identifiers until
// the scan ends and L can be chosen.
func (s *Server) startEstimate(eligible int) (*estimateBuild, error) {
	key, err := s.estimateKey(eligible)
	if err != nil {
		return nil, err
	}
	s.est.mu.Lock()
	eb := &estimateBuild{s: s, off: s.est.root == nil}
	s.est.mu.Unlock()
	if key != nil {
		s.est.mu.Lock()
		eb.b = key.NewBuilder(s.est.cache)
		s.est.mu.Unlock()
	}
	return eb, nil
}

func (eb *estimateBuild) add(e inventory.Eligible) {
	if eb.off {
		return
	}
	if eb.b != nil {
		eb.b.Add(e)
	} else {
		eb.buffered = append(eb.buffered, e)
	}
}

// finish builds the estimate set and keeps its cache for the next build
// (positions never change under one key, so any build's cache is right).
func (eb *estimateBuild) finish(ctx context.Context) (*estimateEpoch, error) {
	s := eb.s
	if eb.off {
		return nil, nil
	}
	if eb.b == nil {
		key, err := s.estimateKey(len(eb.buffered))
		if err != nil {
			return nil, err
		}
		eb.b = key.NewBuilder(nil)
		for _, e := range eb.buffered {
			eb.b.Add(e)
		}
		eb.buffered = nil
	}
	es, err := eb.b.Finish(ctx)
	if err != nil {
		return nil, fmt.Errorf("building the estimate set: %w", err)
	}
	key, _ := s.estimateKey(-1)
	s.est.mu.Lock()
	s.est.cache = es.Cache
	s.est.mu.Unlock()
	ee, err := newEstimateEpoch(key, es)
	if err != nil {
		return nil, err
	}
	if d := es.Density(); d > 2*psi.EstimateDecoy {
		s.log.Warn("the eligible set has outgrown the estimate set's L: estimates lose precision; re-key with a larger --estimate-bits",
			"bits", es.Params.Bits, "density", d, "eligible", es.Eligible)
	}
	s.log.Info("estimate set built", "eligible", es.Eligible, "kept", es.Kept, "evaluated", es.Evaluated,
		"bytes", len(es.Coded), "density", es.Density())
	return ee, nil
}

func newEstimateEpoch(key *psi.EstimateKey, es *psi.EstimateSet) (*estimateEpoch, error) {
	set, err := setcodec.Open(es.Coded, es.Ones)
	if err != nil {
		return nil, fmt.Errorf("the estimate set does not open: %w", err)
	}
	if set.Len() != es.Ones || set.Bits() != es.Params.Bits {
		return nil, fmt.Errorf("the estimate set holds %d values of %d bits, want %d of %d", set.Len(), set.Bits(), es.Ones, es.Params.Bits)
	}
	d := set.Digest()
	return &estimateEpoch{key: key, set: es, digest: hex.EncodeToString(d[:])}, nil
}

// The estimate state file, DIR/estimate/state, keeps the last estimate set
// with the cache of kept positions and the L in use, so a restart neither
// rebuilds it nor changes L. All integers big-endian:
//
//	magic   [8]byte "PSIMEST1"
//	metaLen uint32, meta (JSON of estimateMeta)
//	setLen  uint64, set (setcodec encoding)
//	cacheLen uint64, cache (psi.EstimateCache encoding)
//	sum     [32]byte, SHA-256 of everything before it
const estimateMagic = "PSIMEST1"

type estimateMeta struct {
	Label       string  `json:"label"`
	Epsilon     float64 `json:"epsilon"` // the configured target
	Version     uint    `json:"version"`
	Bits        uint    `json:"bits"`
	Epoch       string  `json:"epoch"`
	CountDigest string  `json:"count_digest"` // the epoch set built in the same read
	Eligible    int     `json:"eligible"`
	Kept        int     `json:"kept"`
	Ones        uint64  `json:"ones"`
}

func (s *Server) estimatePath() string {
	return filepath.Join(s.cfg.Dir.Path(), "estimate", "state")
}

func (s *Server) saveEstimate(epoch, countDigest string, ee *estimateEpoch) error {
	if s.cfg.Dir == nil || ee == nil {
		return nil
	}
	cfg := s.cfg.Estimate.withDefaults()
	es := ee.set
	meta, err := json.Marshal(estimateMeta{Label: es.Params.Label(), Epsilon: cfg.Epsilon, Version: cfg.Version, Bits: es.Params.Bits,
		Epoch: epoch, CountDigest: countDigest, Eligible: es.Eligible, Kept: es.Kept, Ones: es.Ones})
	if err != nil {
		return err
	}
	cache, err := es.Cache.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.estimatePath()), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(s.estimatePath(), 0o600, func(w io.Writer) error {
		h := sha256.New()
		mw := io.MultiWriter(w, h)
		for _, part := range [][]byte{
			[]byte(estimateMagic),
			binary.BigEndian.AppendUint32(nil, uint32(len(meta))), meta,
			binary.BigEndian.AppendUint64(nil, uint64(len(es.Coded))), es.Coded,
			binary.BigEndian.AppendUint64(nil, uint64(len(cache))), cache,
		} {
			if _, err := mw.Write(part); err != nil {
				return err
			}
		}
		_, err := w.Write(h.Sum(nil))
		return err
	})
}

var errEstimateState = errors.New("server: corrupt estimate state file")

// readEstimateState reads and checks DIR/estimate/state.
func (s *Server) readEstimateState() (meta estimateMeta, set, cache []byte, err error) {
	if s.cfg.Dir == nil {
		return meta, nil, nil, os.ErrNotExist
	}
	b, err := os.ReadFile(s.estimatePath())
	if err != nil {
		return meta, nil, nil, err
	}
	if len(b) < len(estimateMagic)+4+16+sha256.Size || string(b[:len(estimateMagic)]) != estimateMagic {
		return meta, nil, nil, errEstimateState
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return meta, nil, nil, fmt.Errorf("%w: checksum mismatch", errEstimateState)
	}
	r := body[len(estimateMagic):]
	part := func(size int) ([]byte, bool) {
		if len(r) < size {
			return nil, false
		}
		var n uint64
		if size == 4 {
			n = uint64(binary.BigEndian.Uint32(r))
		} else {
			n = binary.BigEndian.Uint64(r)
		}
		r = r[size:]
		if n > uint64(len(r)) {
			return nil, false
		}
		p := r[:n:n]
		r = r[n:]
		return p, true
	}
	mj, ok1 := part(4)
	set, ok2 := part(8)
	cache, ok3 := part(8)
	if !ok1 || !ok2 || !ok3 || len(r) != 0 {
		return meta, nil, nil, fmt.Errorf("%w: lengths", errEstimateState)
	}
	if err := json.Unmarshal(mj, &meta); err != nil {
		return meta, nil, nil, fmt.Errorf("%w: %v", errEstimateState, err)
	}
	return meta, set, cache, nil
}

// loadEstimate returns the stored estimate set if it was built in the same
// inventory read as the epoch set of countDigest, under the current key.
func (s *Server) loadEstimate(epoch, countDigest string) (*estimateEpoch, error) {
	s.est.mu.Lock()
	off := s.est.root == nil
	s.est.mu.Unlock()
	if off {
		return nil, nil // estimate mode unavailable; the epoch set alone serves
	}
	meta, set, cache, err := s.readEstimateState()
	if err != nil {
		return nil, err
	}
	key, err := s.estimateKey(-1)
	if err != nil || key == nil {
		return nil, fmt.Errorf("no estimate key: %v", err)
	}
	pr := key.Params()
	if meta.Label != pr.Label() || meta.Epoch != epoch || meta.CountDigest != countDigest {
		return nil, errors.New("the stored estimate set belongs to another build or key")
	}
	c, err := key.UnmarshalEstimateCache(cache)
	if err != nil {
		return nil, err
	}
	es := &psi.EstimateSet{Params: pr, Eligible: meta.Eligible, Kept: meta.Kept, Coded: set, Ones: meta.Ones, Cache: c}
	return newEstimateEpoch(key, es)
}

// keyFor returns the key sessions of mode are evaluated under.
func (e *epochState) keyFor(mode psi.Mode) *psi.Key {
	if mode == psi.ModeEstimate && e.est != nil {
		return e.est.key.Key()
	}
	return e.key
}

// announceEstimate fills the estimate fields of a session response: the set
// size is the number of values in the coded bitmap, L is set_bits.
func announceEstimate(resp *protocol.SessionResponse, ee *estimateEpoch) {
	pr := ee.set.Params
	resp.SetSize, resp.SetBits = int(ee.set.Ones), pr.Bits
	resp.Estimate = &protocol.EstimateInfo{P: pr.P, D: pr.D, Epsilon: pr.Epsilon(), Bits: pr.Bits, Key: pr.Label()}
}
