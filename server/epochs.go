package server

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// epochState is one epoch's key and set. It never changes once built: a
// reload or a rotation makes a new one, and sessions keep the one they
// started with.
type epochState struct {
	id            string
	start, end    time.Time
	key           *psi.Key
	set           *psi.PlatformSet
	countDigest   string
	membersDigest string
	built         time.Time
}

// EpochID names the epoch that contains t for epochs of length rotate:
// its UTC start, such as "20261130T000000Z".
func EpochID(t time.Time, rotate time.Duration) (id string, start, end time.Time) {
	start = t.UTC().Truncate(rotate)
	return start.Format("20060102T150405Z"), start, start.Add(rotate)
}

// InventoryLoad is the audit event written for each read of the inventory.
type InventoryLoad struct {
	Source  string            `json:"source"`
	Epoch   string            `json:"epoch"`
	Reason  string            `json:"reason"` // start, rotation, reload
	Summary inventory.Summary `json:"summary"`
	SetSize int               `json:"set_size"`
	Seconds float64           `json:"seconds"`
	Error   string            `json:"error,omitempty"`
}

// EventName names the event in the audit log.
func (InventoryLoad) EventName() string { return "inventory_load" }

// loadEpoch returns the epoch containing now: from the data directory's
// cache when a set for it was saved with the same suite, else built from the
// inventory and saved.
func (s *Server) loadEpoch(ctx context.Context, now time.Time, reason string, useCache bool) (*epochState, error) {
	id, start, end := EpochID(now, s.cfg.Rotate)
	key, err := psi.DeriveEpochKey(s.cfg.Suite, s.cfg.Seed, id)
	if err != nil {
		return nil, err
	}
	if useCache && s.cfg.Dir != nil {
		meta, count, members, ok, err := s.cfg.Dir.LoadSet(id)
		if err != nil {
			s.log.Warn("cached set unusable; recomputing", "epoch", id, "err", err)
		} else if ok && meta.Suite == s.cfg.Suite.Name() && meta.Verifiable == s.cfg.Suite.Verifiable() && meta.MaxClientRows == s.cfg.MaxClientRows {
			ps := &psi.PlatformSet{Suite: meta.Suite, Epoch: id, Size: meta.Size, Bits: meta.Bits, MaxClientRows: meta.MaxClientRows, Count: count, Members: members}
			st, err := newEpochState(id, start, end, key, ps)
			if err == nil {
				s.log.Info("epoch set loaded from the data directory", "epoch", id, "size", ps.Size)
				return st, nil
			}
			s.log.Warn("cached set unusable; recomputing", "epoch", id, "err", err)
		}
	}
	t0 := time.Now()
	var sum inventory.Summary
	var srcName string
	ps, err := psi.BuildSet(ctx, key, func(yield func(inventory.Eligible) error) error {
		src, closeSrc, err := s.cfg.OpenInventory(ctx)
		if err != nil {
			return err
		}
		defer closeSrc()
		srcName = src.Name()
		invalid := 0
		sum, err = inventory.Run(ctx, src, s.cfg.Policy, yield, func(e *inventory.RecordError) {
			if invalid++; invalid <= 20 {
				s.log.Warn("invalid inventory record", "err", e.Error())
			}
		})
		return err
	}, psi.BuildOptions{MaxClientRows: s.cfg.MaxClientRows, Progress: s.cfg.Progress, ProgressTotal: s.cfg.ProgressTotal, SpillDir: s.spillDir()})
	ev := InventoryLoad{Source: srcName, Epoch: id, Reason: reason, Summary: sum, Seconds: time.Since(t0).Seconds()}
	if err != nil {
		ev.Error = err.Error()
		s.audit(ev)
		return nil, fmt.Errorf("building the set of epoch %s: %w", id, err)
	}
	ev.SetSize = ps.Size
	s.audit(ev)
	s.log.Info("inventory read", "epoch", id, "reason", reason, "records", sum.Records, "eligible_identifiers", ps.Size,
		"security_only", sum.Excluded.SecurityOnly, "opted_out", sum.Excluded.OptedOut, "seconds", ev.Seconds)
	if s.cfg.Dir != nil {
		meta := store.SetMeta{Suite: ps.Suite, Epoch: id, Size: ps.Size, Bits: ps.Bits, MaxClientRows: ps.MaxClientRows, Verifiable: s.cfg.Suite.Verifiable()}
		if err := s.cfg.Dir.SaveSet(id, meta, ps.Count, ps.Members); err != nil {
			return nil, fmt.Errorf("saving the set of epoch %s: %w", id, err)
		}
	}
	return newEpochState(id, start, end, key, ps)
}

func newEpochState(id string, start, end time.Time, key *psi.Key, ps *psi.PlatformSet) (*epochState, error) {
	st := &epochState{id: id, start: start, end: end, key: key, set: ps, built: time.Now()}
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

// Reload re-reads the inventory and rebuilds the current epoch's set; new
// sessions use it, running ones keep theirs. It is what SIGHUP and --reload
// call, so an opt-out never waits for the next epoch.
func (s *Server) Reload(ctx context.Context) error { return s.rebuild(ctx, "reload") }

func (s *Server) rebuild(ctx context.Context, reason string) error {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	st, err := s.loadEpoch(ctx, s.now(), reason, reason == "rotation")
	if err != nil {
		s.log.Error("could not build the epoch set; the previous one keeps serving", "reason", reason, "err", err)
		return err
	}
	prev := s.current.Swap(st)
	s.metrics.setSize.Set(float64(st.set.Size))
	if s.cfg.Dir != nil && prev != nil && prev.id != st.id {
		if err := s.cfg.Dir.PruneSets([]string{st.id, prev.id}); err != nil {
			s.log.Warn("pruning old sets", "err", err)
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
