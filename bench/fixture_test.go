package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/csv"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"

	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// fixture is a synthetic platform inventory and advertiser list (from
// internal/synth) with a planted overlap, read the way psimatch reads them.
type fixture struct {
	truth synth.Truth
	// eligible holds every distinct eligible platform identifier, in
	// inventory order, as the policy filter yields them.
	eligible []inventory.Eligible
	// customers holds the advertiser's identifiers, normalized, in file order.
	customers []normalized
}

// normalized is one normalized identifier of the advertiser's list.
type normalized struct {
	kind  ident.Kind
	value string
}

// input returns the PRF input of x.
func (x normalized) input() ident.Input { return ident.FromNormalized(x.kind, x.value) }

// newFixture generates and reads a data set. The policy filter drops a
// record in ten as security-only, one as account-only and one as opted out,
// so about 0.7·platformRecords identifiers are eligible.
func newFixture(platformRecords, advertiserRows int) (*fixture, error) {
	cfg := synth.Config{Seed: 1, PlatformIDs: platformRecords, AdvertiserRows: advertiserRows}
	var inv, adv bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		return nil, err
	}
	truth, err := synth.WriteAdvertiser(&adv, cfg)
	if err != nil {
		return nil, err
	}
	f := &fixture{truth: truth}
	pol, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		return nil, err
	}
	collect := func(e inventory.Eligible) error {
		f.eligible = append(f.eligible, e)
		return nil
	}
	if _, err := inventory.Scan(context.Background(), bytes.NewReader(inv.Bytes()), "inventory.csv", inventory.CSV, pol, collect, nil); err != nil {
		return nil, err
	}
	if f.customers, err = readCustomers(&adv); err != nil {
		return nil, err
	}
	return f, nil
}

// readCustomers normalizes the email and phone columns of synth's
// customer_id,email,phone list.
func readCustomers(r io.Reader) ([]normalized, error) {
	cr := csv.NewReader(r)
	if _, err := cr.Read(); err != nil { // header
		return nil, err
	}
	var out []normalized
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		for _, c := range [...]struct {
			col  int
			kind ident.Kind
		}{{1, ident.Email}, {2, ident.Phone}} {
			if rec[c.col] == "" {
				continue
			}
			v, err := normalize.Value(c.kind, rec[c.col], "")
			if err != nil {
				return nil, fmt.Errorf("customer list line %d: %w", len(out)+2, err)
			}
			out = append(out, normalized{c.kind, v})
		}
	}
}

// The fixtures: the default one serves every default benchmark; the large
// one (PSIMATCH_BENCH_LARGE=1) holds a million eligible identifiers.
var (
	defaultFixture = sync.OnceValues(func() (*fixture, error) { return newFixture(24_000, 4096) })
	largeFixture   = sync.OnceValues(func() (*fixture, error) { return newFixture(1_500_000, 65536) })
)

// inputs returns the PRF inputs of the first n customers.
func (f *fixture) inputs(n int) []ident.Input {
	out := make([]ident.Input, n)
	for i := range out {
		out[i] = f.customers[i].input()
	}
	return out
}

// scan returns a BuildSet scan function over the first n eligible
// identifiers, already collected: BuildSet's cost without the inventory's.
func (f *fixture) scan(n int) func(yield func(inventory.Eligible) error) error {
	return func(yield func(inventory.Eligible) error) error {
		for _, e := range f.eligible[:n] {
			if err := yield(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// benchSeed is the platform's master seed in the benchmarks.
var benchSeed = bytes.Repeat([]byte{7}, psi.SeedSize)

// platform is a platform's epoch key and its opened sets.
type platform struct {
	key            *psi.Key
	set            *psi.PlatformSet
	count, members *setcodec.Set
}

var (
	platformsMu sync.Mutex
	platforms   = map[string]*platform{}
)

// platformFor builds (once per suite, mode and fixture) the platform's set
// over every eligible identifier of f.
func platformFor(s *psi.Suite, f *fixture) (*platform, error) {
	id := fmt.Sprintf("%s/%v/%p", s.Name(), s.Verifiable(), f)
	platformsMu.Lock()
	defer platformsMu.Unlock()
	if p := platforms[id]; p != nil {
		return p, nil
	}
	key, err := psi.DeriveEpochKey(s, benchSeed, "bench")
	if err != nil {
		return nil, err
	}
	ps, err := psi.BuildSet(context.Background(), key, f.scan(len(f.eligible)), psi.BuildOptions{})
	if err != nil {
		return nil, err
	}
	p := &platform{key: key, set: ps}
	if p.count, err = setcodec.Open(ps.Count, uint64(ps.Size)); err != nil {
		return nil, err
	}
	if p.members, err = setcodec.Open(ps.Members, uint64(ps.Size)); err != nil {
		return nil, err
	}
	platforms[id] = p
	return p, nil
}

// countSession runs a count-mode match in process, as the protocol does it:
// one batch per kind, each blinded, evaluated and shuffled by the platform,
// finalized and looked up in the platform's count set. It returns the
// number of matches.
func countSession(p *platform, customers []normalized) (int, error) {
	s := p.key.Suite()
	var byKind [3][]ident.Input
	for _, c := range customers {
		byKind[c.kind] = append(byKind[c.kind], c.input())
	}
	matched := 0
	for _, k := range ident.Kinds {
		if len(byKind[k]) == 0 {
			continue
		}
		cb := psi.NewCountBlinder(s)
		blinded, err := cb.Blind(byKind[k])
		if err != nil {
			return 0, err
		}
		ev, err := p.key.Evaluate(blinded, psi.ModeCount, 0)
		if err != nil {
			return 0, err
		}
		out, err := cb.Finalize(ev)
		if err != nil {
			return 0, err
		}
		for _, found := range s.Lookup(p.count, out) {
			if found {
				matched++
			}
		}
	}
	return matched, nil
}

// membersSession runs a members-mode match in process and returns which
// customers matched.
func membersSession(p *platform, customers []normalized) ([]bool, error) {
	s := p.key.Suite()
	inputs := make([]ident.Input, len(customers))
	for i, c := range customers {
		inputs[i] = c.input()
	}
	mb, err := psi.NewMembersBlinder(s, p.key.PublicKey())
	if err != nil {
		return nil, err
	}
	blinded, err := mb.Blind(inputs)
	if err != nil {
		return nil, err
	}
	ev, err := p.key.Evaluate(blinded, psi.ModeMembers, 0)
	if err != nil {
		return nil, err
	}
	out, err := mb.Finalize(ev)
	if err != nil {
		return nil, err
	}
	return s.Lookup(p.members, out), nil
}

// hashedPlatform is the status quo: the platform keeps the SHA-256 of each
// eligible normalized identifier in a Go map, per kind.
type hashedPlatform [3]map[[sha256.Size]byte]struct{}

func newHashedPlatform(eligible []inventory.Eligible) *hashedPlatform {
	var h hashedPlatform
	for _, k := range ident.Kinds {
		h[k] = make(map[[sha256.Size]byte]struct{})
	}
	for _, e := range eligible {
		in := e.Input() // kind tag || SHA-256(normalized)
		h[in.Kind()][[sha256.Size]byte(in[1:])] = struct{}{}
	}
	return &h
}

// match hashes each normalized customer identifier and looks it up: the
// whole per-identifier cost of hashed matching. It returns the matches.
func (h *hashedPlatform) match(customers []normalized) int {
	n := 0
	for _, c := range customers {
		if _, ok := h[c.kind][sha256.Sum256([]byte(c.value))]; ok {
			n++
		}
	}
	return n
}

// randomInputs returns n random PRF inputs.
func randomInputs(n int) []ident.Input {
	out := make([]ident.Input, n)
	for i := range out {
		var d [sha256.Size]byte
		rand.Read(d[:])
		out[i] = ident.FromDigest(ident.Email, d)
	}
	return out
}

// randomValues returns n random L-bit set values, as truncated OPRF outputs
// are.
func randomValues(n int, L uint, seed uint64) []setcodec.Value {
	r := mrand.New(mrand.NewPCG(seed, uint64(n)))
	out := make([]setcodec.Value, n)
	var b [16]byte
	for i := range out {
		for j := 0; j < 16; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		out[i] = setcodec.Truncate(b[:], L)
	}
	return out
}
