package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/psimatch/psimatch/psi/ident"
)

// ErrChanged is wrapped by the errors of Check and Result.Yield when the
// inventory read in one pass contradicts an earlier pass (a record appeared,
// vanished or changed between them). Nothing read should be used; read the
// inventory again.
var ErrChanged = errors.New("inventory: the inventory changed while it was being read; read it again")

// An Opener opens the inventory, with a function that closes it. Run reads
// the inventory up to three times: when the Source it opens is a Rewinder, it
// is opened once and rewound for each pass (so every pass reads the same
// records, whatever changes meanwhile); otherwise it is closed and opened
// again for each pass, and a change between passes is caught (ErrChanged).
type Opener func(ctx context.Context) (src Source, closeSrc func() error, err error)

// A Rewinder is a Source that can be read again from its first record, and
// then gives the same records: NewSource over an io.Seeker (a file) seeks
// back on the file it opened, even if the path was replaced since; a database
// source runs its query again in the same snapshot.
type Rewinder interface {
	Rewind(ctx context.Context) error
}

// passes hands out the inventory's Source for each pass: the same one
// rewound when it is a Rewinder, else a newly opened one.
type passes struct {
	open     Opener
	src      Source
	closeSrc func() error
}

func (ps *passes) next(ctx context.Context) (Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if ps.src != nil {
		if rw, ok := ps.src.(Rewinder); ok {
			if err := rw.Rewind(ctx); err != nil {
				return nil, err
			}
			return ps.src, nil
		}
		if err := ps.close(); err != nil {
			return nil, err
		}
	}
	src, closeSrc, err := ps.open(ctx)
	if err != nil {
		return nil, err
	}
	if closeSrc == nil {
		closeSrc = func() error { return nil }
	}
	ps.src, ps.closeSrc = src, closeSrc
	return src, nil
}

// close closes the open Source, if any.
func (ps *passes) close() error {
	if ps.src == nil {
		return nil
	}
	err := ps.closeSrc()
	ps.src, ps.closeSrc = nil, nil
	return err
}

// Fingerprint identifies an eligible set: it is computed from the PRF
// inputs of the eligible identifiers, in any order, and from nothing else,
// so two reads that allow the same identifiers have the same fingerprint
// however their records are written or ordered.
type Fingerprint [sha256.Size]byte

// String returns the fingerprint in hex.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Result is what Check found: the counts, the fingerprint of the eligible
// set, and the per-value state that Yield needs to hand out that set.
type Result struct {
	// Summary counts the records by reason and the eligible identifiers.
	Summary Summary
	// Fingerprint identifies the eligible set.
	Fingerprint Fingerprint

	p        *Policy
	passes   *passes
	users    *userHasher
	optedOut map[userKey]struct{}
	values   map[valueKey]uint64
	eligible int64 // distinct eligible values
}

// Run reads the inventory through the deny-wins policy and calls yield once
// for each distinct eligible identifier; onInvalid, if not nil, is called for
// each invalid record, in order. It is Check followed by Result.Yield.
//
// An identifier is eligible when some record gives it an eligible purpose
// and deny wins does not exclude it. Deny wins, by value and by user:
//
//   - a normalized value is excluded if any record of it, of any user, is
//     security-only, opted out, or invalid in another field, or belongs to a
//     user who opted out;
//   - every identifier of a user with any opted-out record is excluded.
//
// Run stops at the first error from a source, from yield or from ctx, and
// returns it with the counts so far. The identifiers yielded before an error
// are not the whole eligible set: discard them.
func Run(ctx context.Context, open Opener, p *Policy, yield func(Eligible) error, onInvalid func(*RecordError)) (Summary, error) {
	res, err := Check(ctx, open, p, onInvalid)
	if err != nil {
		return Summary{}, err
	}
	return res.Summary, res.Yield(ctx, yield)
}

// Scan is Run over a CSV or JSON Lines file read from r, which is read from
// its start once per pass; name is the file's name, used in errors and,
// when format is Auto, to pick the format.
func Scan(ctx context.Context, r io.ReadSeeker, name string, format Format, p *Policy, yield func(Eligible) error, onInvalid func(*RecordError)) (Summary, error) {
	return Run(ctx, ReaderOpener(r, name, format), p, yield, onInvalid)
}

// ReaderOpener returns an Opener that reads r from its start at each pass.
// The Source it opens is a Rewinder.
func ReaderOpener(r io.ReadSeeker, name string, format Format) Opener {
	return func(context.Context) (Source, func() error, error) {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		src, err := NewSource(r, name, format)
		if err != nil {
			return nil, nil, err
		}
		return src, func() error { return nil }, nil
	}
}

// Check reads the inventory twice and decides which identifiers are
// eligible: the first pass collects the users who opted out (reading only
// user_id and opted_out), the second normalizes every value and records, per
// distinct value, whether a record allows it and whether any denies it.
// onInvalid is called for each invalid record of the second pass. A
// Rewinder source stays open in the Result for Yield: call Yield or Close.
//
// Memory is bounded by the number of distinct users who opted out and of
// distinct values, never by the records: a value is kept as its first 16
// bytes of PRF input (the kind tag and 120 bits of SHA-256) with 8 bytes of
// state, a user as 16 bytes of a keyed hash of its id (the key is random per
// Check, so the hashes cannot be matched with a list of user ids later); no
// string is kept. Two distinct values share a key with probability about
// n²/2¹²¹ for n of them. A collision can only exclude an identifier: its
// state is the union of both values', and Yield hands out only values of
// records that pass the policy themselves.
func Check(ctx context.Context, open Opener, p *Policy, onInvalid func(*RecordError)) (*Result, error) {
	if p == nil {
		return nil, errors.New("inventory: nil Policy")
	}
	users, err := newUserHasher()
	if err != nil {
		return nil, err
	}
	res := &Result{p: p, passes: &passes{open: open}, users: users, optedOut: map[userKey]struct{}{}, values: map[valueKey]uint64{}}
	ok := false
	defer func() {
		if !ok {
			res.passes.close()
		}
	}()

	// Pass 1: the users with any opted-out record.
	err = res.pass(ctx, false, func(_ string, c *classified) error {
		if c.optedOut && c.hasUser {
			res.optedOut[c.user] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Pass 2: the state of every value.
	sum := &res.Summary
	err = res.pass(ctx, true, func(name string, c *classified) error {
		sum.Records++
		_, userOut := res.optedOut[c.user]
		userOut = userOut && c.hasUser
		if c.optedOut && c.hasUser && !userOut {
			return fmt.Errorf("%w (%s: line %d is opted out, and was not in the first pass)", ErrChanged, name, c.line)
		}
		switch {
		case c.reason == Invalid:
			sum.Excluded.Invalid++
			if onInvalid != nil {
				err := c.err
				if err == nil { // cannot happen; never count an invalid record silently
					err = errors.New("invalid record")
				}
				onInvalid(&RecordError{Source: name, Line: c.line, Err: err})
			}
		case c.reason != Included:
			sum.Excluded.add(c.reason, 1)
		case userOut:
			sum.Excluded.UserOptedOut++
		}
		// An Included record of a user who did not opt out is counted when
		// its value is settled, below.
		if !c.hasValue {
			return nil
		}
		var flags uint64
		switch {
		case c.reason == Invalid:
			flags |= fInvalid
		case c.reason == SecurityOnly:
			flags |= fSecurity
		}
		if c.optedOut || userOut {
			flags |= fOptedOut
		}
		included := c.reason == Included && !userOut
		if flags == 0 && !included {
			return nil // an account-only record: it neither allows nor denies
		}
		k := keyOf(c.in)
		st := res.values[k] | flags
		if included && st&countMask != countMask {
			st++
		}
		res.values[k] = st
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Settle: a value allowed by some record and denied by none is eligible.
	var acc [4]uint64
	for k, st := range res.values {
		n := int64(st & countMask)
		if n == 0 {
			continue
		}
		if r := denialOf(st); r != Included {
			sum.Excluded.add(r, n)
			continue
		}
		sum.EligibleRecords += n
		res.eligible++
		if kind := ident.Kind(k[0]); kind.Valid() {
			*sum.EligibleIdentifiers.At(kind)++
		}
		h := sha256.Sum256(append([]byte(fingerprintDomain), k[:]...))
		for i := range acc {
			acc[i] += binary.BigEndian.Uint64(h[8*i:])
		}
	}
	fp := sha256.New()
	fp.Write([]byte(fingerprintDomain))
	fp.Write(binary.BigEndian.AppendUint64(nil, uint64(res.eligible)))
	for _, a := range acc {
		fp.Write(binary.BigEndian.AppendUint64(nil, a))
	}
	fp.Sum(res.Fingerprint[:0])
	if _, rewinds := res.passes.src.(Rewinder); !rewinds {
		if err := res.passes.close(); err != nil {
			return nil, err
		}
	}
	ok = true
	return res, nil
}

// Close releases the inventory source Check kept open for Yield. Yield
// closes it itself.
func (r *Result) Close() error { return r.passes.close() }

// fingerprintDomain separates the fingerprint's hashes from any other use of
// SHA-256 over PRF inputs.
const fingerprintDomain = "psimatch eligible set fingerprint v1\x00"

// Yield reads the inventory a third time and calls yield once for each
// distinct eligible identifier that Check found, in the order of their first
// eligible record. Call it once per Result. A record that contradicts Check
// (a new opt-out, a new denial of an eligible value, an eligible value gone)
// stops it with an error wrapping ErrChanged.
func (r *Result) Yield(ctx context.Context, yield func(Eligible) error) error {
	defer r.passes.close()
	var yielded int64
	err := r.pass(ctx, true, func(name string, c *classified) error {
		_, userOut := r.optedOut[c.user]
		userOut = userOut && c.hasUser
		if c.optedOut && c.hasUser && !userOut {
			return fmt.Errorf("%w (%s: line %d is opted out, and was not before)", ErrChanged, name, c.line)
		}
		if !c.hasValue {
			return nil
		}
		k := keyOf(c.in)
		st, ok := r.values[k]
		if !ok || st&countMask == 0 || denialOf(st) != Included {
			return nil
		}
		if c.reason == Invalid || c.reason == SecurityOnly || c.optedOut || userOut {
			return fmt.Errorf("%w (%s: line %d now excludes an identifier that was eligible)", ErrChanged, name, c.line)
		}
		if c.reason != Included || st&fYielded != 0 {
			return nil // an account-only record, or a duplicate
		}
		r.values[k] = st | fYielded
		yielded++
		return yield(Eligible{in: c.in, valid: true})
	})
	if err != nil {
		return err
	}
	if yielded != r.eligible {
		return fmt.Errorf("%w (%d eligible identifiers found, %d read again)", ErrChanged, r.eligible, yielded)
	}
	return nil
}

// valueKey is the first 16 bytes of a PRF input: the kind tag and 120 bits
// of the SHA-256 of the normalized value.
type valueKey [16]byte

func keyOf(in ident.Input) (k valueKey) {
	copy(k[:], in[:])
	return k
}

// A value's state is a uint64: flags in the top byte, and below them the
// number of records that allow it (saturating).
const (
	fSecurity uint64 = 1 << (63 - iota) // a security-only record
	fOptedOut                           // an opted-out record, or a record of an opted-out user
	fInvalid                            // a record invalid in another field
	fYielded                            // Yield has handed it out
	countMask uint64 = 1<<56 - 1
)

// denialOf returns the deny-wins reason that excludes a value in state st, or
// Included.
func denialOf(st uint64) Reason {
	switch {
	case st&fSecurity != 0:
		return ValueSecurityOnly
	case st&fOptedOut != 0:
		return ValueOptedOut
	case st&fInvalid != 0:
		return ValueInvalid
	}
	return Included
}

// userKey is 16 bytes of a keyed hash of a user id.
type userKey [16]byte

// userHasher hashes user ids under a key drawn for one Check.
type userHasher struct{ secret [32]byte }

func newUserHasher() (*userHasher, error) {
	h := &userHasher{}
	if _, err := rand.Read(h.secret[:]); err != nil {
		return nil, fmt.Errorf("inventory: drawing the user-id key: %w", err)
	}
	return h, nil
}

// key returns the user's key: the first 16 bytes of SHA-256(key || uid).
// The key has a fixed length, so this is a PRF of uid for our purpose.
func (h *userHasher) key(uid string) (k userKey) {
	d := sha256.New()
	d.Write(h.secret[:])
	d.Write([]byte(uid))
	var sum [sha256.Size]byte
	copy(k[:], d.Sum(sum[:0]))
	return k
}

// batchSize is how many records travel together from the reader to a
// classifying worker.
const batchSize = 512

// pass reads the inventory once more, classifies every record on
// GOMAXPROCS workers and calls fn for each in the source's order, from the
// calling goroutine.
func (r *Result) pass(ctx context.Context, full bool, fn func(name string, c *classified) error) (err error) {
	src, err := r.passes.next(ctx)
	if err != nil {
		return err
	}
	p, users := r.p, r.users
	name := src.Name()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type job struct {
		raws []Raw
		out  chan []classified
	}
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan job, workers)
	order := make(chan chan []classified, 2*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				out := make([]classified, len(j.raws))
				for i := range j.raws {
					out[i] = p.classify(&j.raws[i], users, full)
				}
				j.out <- out
			}
		}()
	}
	var readErr error
	go func() {
		defer close(order)
		defer close(jobs)
		for {
			raws := make([]Raw, 0, batchSize)
			var err error
			for len(raws) < batchSize {
				raws = append(raws, Raw{})
				if err = src.Next(&raws[len(raws)-1]); err != nil {
					raws = raws[:len(raws)-1]
					break
				}
			}
			if len(raws) > 0 {
				j := job{raws: raws, out: make(chan []classified, 1)}
				select {
				case order <- j.out:
				case <-ctx.Done():
					return
				}
				jobs <- j // a worker is free or soon is: order bounds the jobs in flight
			}
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	finish := func() {
		cancel()
		for range order { // let the reader stop before the source is closed
		}
		wg.Wait()
	}
	for out := range order {
		batch := <-out
		for i := range batch {
			if err := fn(name, &batch[i]); err != nil {
				finish()
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			finish()
			return err
		}
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}
