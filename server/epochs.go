package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// epochState is one generation of one epoch: its key and set. It never
// changes once built: a reload or a rotation makes a new one, and sessions
// keep the one they started with.
type epochState struct {
	id            string
	start, end    time.Time
	key           *psi.Key
	set           *psi.PlatformSet
	countDigest   string
	membersDigest string

	// secret is the epoch's ratchet position, from which each generation's
	// key is derived; it is wiped when the state stops being current and
	// the epoch changes (sessions need only key).
	secret      psi.EpochSecret
	fingerprint inventory.Fingerprint
	est         *estimateEpoch // estimate mode's set (server/estimate.go)
}

// EpochID names the epoch that contains t for epochs of length rotate:
// its UTC start, such as "20261130T000000Z".
func EpochID(t time.Time, rotate time.Duration) (id string, start, end time.Time) {
	start = t.UTC().Truncate(rotate)
	return start.Format(epochLayout), start, start.Add(rotate)
}

const epochLayout = "20060102T150405Z"

// InventoryLoad is the audit event written for each read of the inventory.
type InventoryLoad struct {
	Source  string            `json:"source"`
	Epoch   string            `json:"epoch"`
	Reason  string            `json:"reason"` // start, rotation, reload
	Summary inventory.Summary `json:"summary"`
	SetSize int               `json:"set_size"`
	Seconds float64           `json:"seconds"`
	// Fingerprint identifies the eligible set read (inventory.Fingerprint).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Action is what the read led to: "unchanged" (the set being served is
	// current), "cached" (the data directory's set is current and was
	// loaded) or "built" (the set was built, and a new generation key
	// derived).
	Action string `json:"action,omitempty"`
	// PreviousFingerprint is the fingerprint of the cached or served set a
	// build replaced, when it differed.
	PreviousFingerprint string `json:"previous_fingerprint,omitempty"`
	// PublicKey is the generation's public key, in hex.
	PublicKey string `json:"public_key,omitempty"`
	Error     string `json:"error,omitempty"`
}

// EventName names the event in the audit log.
func (InventoryLoad) EventName() string { return "inventory_load" }

// loadEpoch reads the inventory through the deny-wins policy and returns the
// state serving the epoch containing now. Every call reads the inventory:
// the set being served, or the data directory's cached set, is reused only
// when the fingerprint of the eligible set just read equals its own (and
// useCache allows the cache); otherwise the set is built under the key of
// the new generation, derived from the epoch's ratchet secret and the
// fingerprint, and saved.
func (s *Server) loadEpoch(ctx context.Context, now time.Time, reason string, useCache bool) (*epochState, error) {
	id, start, end := EpochID(now, s.cfg.Rotate)
	t0 := time.Now()
	ev := InventoryLoad{Epoch: id, Reason: reason}
	fail := func(err error) (*epochState, error) {
		ev.Error = err.Error()
		ev.Seconds = time.Since(t0).Seconds()
		s.audit(ev)
		return nil, err
	}
	secret, err := s.epochSecret(id, start, end)
	if err != nil {
		return fail(fmt.Errorf("the key schedule of epoch %s: %w", id, err))
	}
	// From now on the ratchet, not the seed, gives every key: drop the
	// server's reference to the seed (serve erases its copy). A shared seed
	// (replicas) keeps it: each epoch derives from it directly.
	if !s.cfg.SharedSeed {
		s.cfg.Seed = nil
	}

	open := func(ctx context.Context) (inventory.Source, func() error, error) {
		src, closeSrc, err := s.cfg.OpenInventory(ctx)
		if err == nil {
			ev.Source = src.Name()
		}
		return src, closeSrc, err
	}
	invalid := 0
	res, err := inventory.Check(ctx, open, s.cfg.Policy, func(e *inventory.RecordError) {
		if invalid++; invalid <= 20 {
			s.log.Warn("invalid inventory record", "err", e.Error())
		}
	})
	if err != nil {
		secret.Wipe()
		return fail(fmt.Errorf("reading the inventory for epoch %s: %w", id, err))
	}
	defer res.Close()
	ev.Summary, ev.Fingerprint = res.Summary, res.Fingerprint.String()
	key, err := psi.DeriveGenerationKey(s.cfg.Suite, &secret, res.Fingerprint[:])
	if err != nil {
		secret.Wipe()
		return fail(err)
	}
	pk := hex.EncodeToString(key.PublicKey())
	ev.PublicKey = pk
	done := func(st *epochState, action string) (*epochState, error) {
		ev.Action, ev.SetSize, ev.Seconds = action, st.set.Size, time.Since(t0).Seconds()
		s.audit(ev)
		x := res.Summary.Excluded // every reason, as inventory check names them
		s.log.Info("inventory read", "epoch", id, "reason", reason, "action", action, "records", res.Summary.Records,
			"eligible_identifiers", st.set.Size, "invalid", x.Invalid, "security_only", x.SecurityOnly,
			"no_advertising_purpose", x.NoAdvertisingPurpose, "opted_out", x.OptedOut,
			"user_opted_out_elsewhere", x.UserOptedOut, "value_shared_with_security_only", x.ValueSecurityOnly,
			"value_shared_with_opted_out", x.ValueOptedOut, "value_shared_with_invalid", x.ValueInvalid,
			"fingerprint", ev.Fingerprint[:16], "seconds", ev.Seconds)
		return st, nil
	}

	if cur := s.current.Load(); cur != nil && cur.id == id {
		if cur.fingerprint == res.Fingerprint && hex.EncodeToString(cur.key.PublicKey()) == pk {
			secret.Wipe()
			return done(cur, "unchanged")
		}
		ev.PreviousFingerprint = cur.fingerprint.String()
	}
	if useCache && s.cfg.Dir != nil {
		meta, count, members, ok, err := s.cfg.Dir.LoadSet(id)
		switch {
		case err != nil:
			s.log.Warn("cached set unusable; recomputing", "epoch", id, "err", err)
		case !ok:
		case meta.Suite != s.cfg.Suite.Name() || meta.Verifiable != s.cfg.Suite.Verifiable() || meta.MaxClientRows != s.cfg.MaxClientRows:
			s.log.Info("the cached set was built with other settings; rebuilding", "epoch", id)
		case meta.Fingerprint != ev.Fingerprint || meta.PublicKey != pk:
			if meta.Fingerprint != ev.Fingerprint {
				ev.PreviousFingerprint = meta.Fingerprint
			}
			s.log.Info("the inventory's eligible set differs from the cached set; rebuilding it under a new generation key", "epoch", id)
		default:
			ps := &psi.PlatformSet{Suite: meta.Suite, Epoch: id, Size: meta.Size, Bits: meta.Bits, MaxClientRows: meta.MaxClientRows, Count: count, Members: members}
			st, err := newEpochState(id, start, end, key, ps)
			if err == nil {
				st.est, err = s.loadEstimate(id, st.countDigest)
			}
			if err == nil {
				st.secret, st.fingerprint = secret, res.Fingerprint
				s.log.Info("epoch set loaded from the data directory: its fingerprint matches the inventory", "epoch", id, "size", ps.Size)
				return done(st, "cached")
			}
			s.log.Warn("cached set unusable; recomputing", "epoch", id, "err", err)
		}
	}

	eb, err := s.startEstimate(int(ident.Sum(res.Summary.EligibleIdentifiers)))
	if err != nil {
		secret.Wipe()
		return fail(err)
	}
	ps, err := psi.BuildSet(ctx, key, func(yield func(inventory.Eligible) error) error {
		return res.Yield(ctx, func(e inventory.Eligible) error { eb.add(e); return yield(e) })
	}, psi.BuildOptions{MaxClientRows: s.cfg.MaxClientRows, Progress: s.cfg.Progress, ProgressTotal: s.cfg.ProgressTotal, SpillDir: s.spillDir()})
	if err != nil {
		secret.Wipe()
		return fail(fmt.Errorf("building the set of epoch %s: %w", id, err))
	}
	est, err := eb.finish(ctx)
	if err != nil {
		secret.Wipe()
		return fail(fmt.Errorf("building the estimate set of epoch %s: %w", id, err))
	}
	if s.cfg.Dir != nil {
		meta := store.SetMeta{Suite: ps.Suite, Epoch: id, Size: ps.Size, Bits: ps.Bits, MaxClientRows: ps.MaxClientRows,
			Verifiable: s.cfg.Suite.Verifiable(), Fingerprint: ev.Fingerprint, PublicKey: pk}
		if err := s.cfg.Dir.SaveSet(id, meta, ps.Count, ps.Members); err != nil {
			secret.Wipe()
			return fail(fmt.Errorf("saving the set of epoch %s: %w", id, err))
		}
	}
	st, err := newEpochState(id, start, end, key, ps)
	if err != nil {
		secret.Wipe()
		return fail(err)
	}
	st.secret, st.fingerprint, st.est = secret, res.Fingerprint, est
	if err := s.saveEstimate(id, st.countDigest, est); err != nil {
		return fail(fmt.Errorf("saving the estimate set of epoch %s: %w", id, err))
	}
	return done(st, "built")
}

// maxRatchetSteps bounds how far the ratchet walks in one go (a clock far
// ahead, or a tiny --rotate, would otherwise spin).
const maxRatchetSteps = 10_000_000

// epochSecret returns the ratchet's secret for epoch id, from start to end.
// It walks forward from the current state's secret, else from the data
// directory's anchor, else starts the ratchet from the master seed at this
// epoch; a new position is saved as the anchor before it is used, so the
// data directory never holds an earlier epoch's secret. An anchor inside
// [start, end) (--rotate was made longer) is stepped once to id.
func (s *Server) epochSecret(id string, start, end time.Time) (psi.EpochSecret, error) {
	if s.cfg.SharedSeed {
		return psi.RatchetOrigin(s.cfg.Seed, id)
	}
	var anchor psi.EpochSecret
	have := false
	if cur := s.current.Load(); cur != nil {
		anchor, have = cur.secret, true
	}
	if !have && s.cfg.Dir != nil {
		a, ok, err := s.cfg.Dir.LoadAnchor()
		if err != nil {
			return psi.EpochSecret{}, err
		}
		anchor, have = psi.EpochSecret{Epoch: a.Epoch, Secret: a.Secret}, ok
		clear(a.Secret[:])
	}
	if !have {
		if s.cfg.Seed == nil {
			return psi.EpochSecret{}, errors.New("server: no master seed and no ratchet anchor in the data directory")
		}
		origin, err := psi.RatchetOrigin(s.cfg.Seed, id)
		if err != nil {
			return psi.EpochSecret{}, err
		}
		s.log.Info("epoch-key ratchet started from the master seed", "epoch", id)
		if err := s.saveAnchor(origin); err != nil {
			return psi.EpochSecret{}, err
		}
		return origin, nil
	}
	if anchor.Epoch == id {
		return anchor, nil
	}
	defer anchor.Wipe()
	from, err := time.Parse(epochLayout, anchor.Epoch)
	if err != nil {
		return psi.EpochSecret{}, fmt.Errorf("server: the ratchet's epoch %q is not an epoch name", anchor.Epoch)
	}
	if !from.Before(end) {
		return psi.EpochSecret{}, fmt.Errorf("%w (the ratchet is at epoch %s, asked for %s: is the clock behind?)", psi.ErrEpochBehind, anchor.Epoch, id)
	}
	var steps []string
	for t := from.Truncate(s.cfg.Rotate).Add(s.cfg.Rotate); t.Before(start); t = t.Add(s.cfg.Rotate) {
		if len(steps) >= maxRatchetSteps {
			return psi.EpochSecret{}, fmt.Errorf("server: the ratchet is more than %d epochs behind epoch %s", maxRatchetSteps, id)
		}
		steps = append(steps, t.UTC().Format(epochLayout))
	}
	next, err := psi.WalkRatchet(anchor, append(steps, id))
	if err != nil {
		return psi.EpochSecret{}, err
	}
	return next, s.saveAnchor(next)
}

// saveAnchor stores the ratchet's position in the data directory, if any.
func (s *Server) saveAnchor(e psi.EpochSecret) error {
	if s.cfg.Dir == nil {
		return nil
	}
	a := store.Anchor{Epoch: e.Epoch, Secret: e.Secret}
	defer clear(a.Secret[:])
	return s.cfg.Dir.SaveAnchor(a)
}

func newEpochState(id string, start, end time.Time, key *psi.Key, ps *psi.PlatformSet) (*epochState, error) {
	st := &epochState{id: id, start: start, end: end, key: key, set: ps}
	for _, x := range []struct {
		enc    []byte
		digest *string
	}{{ps.Count, &st.countDigest}, {ps.Members, &st.membersDigest}} {
		set, err := setcodec.Open(x.enc, uint64(ps.Size))
		if err != nil {
			return nil, err
		}
		d := set.Digest()
		*x.digest = hex.EncodeToString(d[:])
	}
	return st, nil
}

// setFor returns the coded set and its digest for a mode.
func (e *epochState) setFor(mode psi.Mode) ([]byte, string) {
	if mode == psi.ModeEstimate {
		if e.est == nil {
			return nil, "" // no estimate set: matches no session's digest
		}
		return e.est.set.Coded, e.est.digest
	}
	if mode == psi.ModeMembers {
		return e.set.Members, e.membersDigest
	}
	return e.set.Count, e.countDigest
}

// rotate keeps the current epoch up to date until ctx ends: at each epoch
// boundary it builds the new epoch's set in the background while the old
// one keeps serving, then switches. Old cached sets are pruned.
func (s *Server) rotate(ctx context.Context) {
	for {
		cur := s.current.Load()
		wait := time.Until(cur.end)
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		s.rebuild(ctx, "rotation")
		if s.current.Load() == cur { // the build failed: retry soon
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(s.cfg.Rotate/10, time.Minute)):
			}
		}
	}
}

// Reload re-reads the inventory and, when its eligible set changed, rebuilds
// the current epoch's set under a new generation key; new sessions use it,
// running ones keep theirs. It is what SIGHUP and --reload call, so an
// opt-out never waits for the next epoch.
func (s *Server) Reload(ctx context.Context) error { return s.rebuild(ctx, "reload") }

func (s *Server) rebuild(ctx context.Context, reason string) error {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	st, err := s.loadEpoch(ctx, s.now(), reason, true)
	if err != nil {
		s.log.Error("could not build the epoch set; the previous one keeps serving", "reason", reason, "err", err)
		return err
	}
	prev := s.current.Swap(st)
	s.metrics.setSize.Set(float64(st.set.Size))
	if prev != nil && prev != st && prev.id != st.id {
		// The ratchet has moved on: the old epoch's secret is no longer
		// needed (its sessions keep only its key).
		prev.secret.Wipe()
		if s.cfg.Dir != nil {
			if err := s.cfg.Dir.PruneSets([]string{st.id, prev.id}); err != nil {
				s.log.Warn("pruning old sets", "err", err)
			}
		}
	}
	return nil
}

// spillDir is where the set build spills its prefixes: the data directory,
// or the system's temporary directory without one.
func (s *Server) spillDir() string {
	if s.cfg.Dir == nil {
		return ""
	}
	return s.cfg.Dir.Path()
}
