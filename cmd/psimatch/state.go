package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/psimatch/psimatch/internal/state"
	"github.com/psimatch/psimatch/internal/store"
	"github.com/psimatch/psimatch/pginventory"
)

// openState opens the server's state store: the PostgreSQL database spec
// names (shared by replicas), or with spec empty the embedded journal in
// the data directory.
func openState(ctx context.Context, spec string, dir *store.Dir) (state.Store, error) {
	if spec == "" {
		j, err := state.OpenJournal(dir.StatePath(), nil)
		if err != nil {
			return nil, withHint(err, exitInput, "the state journal in --data-dir is unusable; the error says what to do")
		}
		return j, nil
	}
	if !pginventory.IsConnString(spec) {
		return nil, usageError("--state: want a postgres:// URL or \"host=... dbname=... user=...\" (leave it out to keep the state in --data-dir)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := state.OpenPostgres(ctx, spec)
	if err != nil {
		return nil, withHint(err, exitInput, "check --state: the database must be reachable and the user allowed to create tables on first use")
	}
	return p, nil
}

// readUsage reads the advertisers' usage for 'advertiser list': from the
// database spec names, or from the journal in dataDir, read without taking
// the running server's lock. ok is false when neither was given.
func readUsage(ctx context.Context, spec, dataDir string) (usage map[string]state.Usage, ok bool, err error) {
	var st state.Store
	switch {
	case spec != "":
		if !pginventory.IsConnString(spec) {
			return nil, false, usageError("--state: want a postgres:// URL or \"host=... dbname=... user=...\"")
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		p, err := state.OpenPostgres(ctx, spec)
		if err != nil {
			return nil, false, withHint(err, exitInput, "check --state")
		}
		defer p.Close()
		st = p
	case dataDir != "":
		m, err := state.ReadJournal(filepath.Join(dataDir, store.StateFile))
		if errors.Is(err, os.ErrNotExist) {
			return map[string]state.Usage{}, true, nil // no session yet
		}
		if err != nil {
			return nil, false, withHint(err, exitInput, "check --data-dir")
		}
		st = m
	default:
		return nil, false, nil
	}
	list, err := st.Usage(ctx, time.Now())
	if err != nil {
		return nil, false, withHint(err, exitFailure)
	}
	usage = map[string]state.Usage{}
	for _, u := range list {
		usage[u.Advertiser] = u
	}
	return usage, true, nil
}
