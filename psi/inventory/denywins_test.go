package inventory

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/normalize"
)

// ConflictsSummary is what testdata/conflicts.csv must give with the default
// policy and --default-region US; other packages' tests check the same file
// through the command and the server.
var conflictsSummary = Summary{
	Records:         21,
	EligibleRecords: 4,
	Excluded: Excluded{
		Invalid: 2, SecurityOnly: 4, NoAdvertisingPurpose: 1, OptedOut: 2,
		UserOptedOut: 2, ValueSecurityOnly: 4, ValueOptedOut: 1, ValueInvalid: 1,
	},
	EligibleIdentifiers: Identifiers{Email: 2, Phone: 1},
}

// TestDenyWinsConflicts reads the conflict cases of issue 14: a phone that is
// security-only for one user and advertising for another (written
// differently), a gmail alias of a recovery address, a case variant, a number
// with an extension, a user opted out on one identifier, duplicate rows with
// one opted out, and a value whose other record is unreadable. Only the
// values deny wins allows come out.
func TestDenyWinsConflicts(t *testing.T) {
	f, err := os.Open("testdata/conflicts.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}, DefaultRegion: "US"})
	got := map[ident.Input]bool{}
	sum, err := Scan(context.Background(), f, "conflicts.csv", Auto, p, func(e Eligible) error {
		got[e.Input()] = true
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum != conflictsSummary {
		t.Errorf("summary\n got %+v\nwant %+v", sum, conflictsSummary)
	}
	want := map[ident.Input]bool{
		ident.FromNormalized(ident.Email, "mallory@example.com"): true,
		ident.FromNormalized(ident.Email, "trent@example.com"):   true,
		ident.FromNormalized(ident.Phone, "+14155550199"):        true,
	}
	for in := range got {
		if !want[in] {
			t.Errorf("yielded an identifier deny wins excludes: %x", in[:8])
		}
	}
	if len(got) != len(want) {
		t.Errorf("yielded %d identifiers, want %d", len(got), len(want))
	}
}

// TestFingerprint: the fingerprint depends on the eligible set only, not on
// how or in which order its records are written, and changes when one user
// opts out.
func TestFingerprint(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	fp := func(data string) Fingerprint {
		t.Helper()
		r, err := Check(context.Background(), ReaderOpener(stringsReader(data), "i.csv", CSV), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Fingerprint
	}
	const h = "user_id,kind,value,purposes,opted_out\n"
	a := fp(h + "u1,email,a@example.com,advertising,false\nu2,phone,+14155550100,advertising,false\n")
	b := fp(h + "u2,phone,+1 (415) 555-0100,advertising,\nu3,email,x@example.com,account,false\nu1,email,A@Example.com,advertising;account,false\n")
	c := fp(h + "u1,email,a@example.com,advertising,false\nu2,phone,+14155550100,advertising,false\nu2,email,z@example.com,account,true\n")
	empty := fp(h)
	if a != b {
		t.Error("the same eligible set written differently has another fingerprint")
	}
	if a == c || a == empty || c == empty {
		t.Error("different eligible sets share a fingerprint")
	}
}

// TestChangedBetweenPasses: an inventory that is opened again for each pass
// (not a Rewinder) and gains an opt-out or loses a value between the passes
// is refused with ErrChanged rather than read half old, half new.
func TestChangedBetweenPasses(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	const h = "user_id,kind,value,purposes,opted_out\n"
	versions := []string{
		h + "u1,email,a@example.com,advertising,false\nu1,phone,+14155550100,advertising,false\n",
		h + "u1,email,a@example.com,advertising,true\nu1,phone,+14155550100,advertising,false\n",
	}
	for _, tc := range []struct {
		name  string
		order []int // the version each pass reads
	}{
		{"opt-out appears in pass 2", []int{0, 1, 1}},
		{"opt-out appears in pass 3", []int{0, 0, 1}},
	} {
		n := 0
		open := func(ctx context.Context) (Source, func() error, error) {
			v := versions[tc.order[min(n, 2)]]
			n++
			return notRewindable(v)
		}
		_, err := Run(context.Background(), open, p, func(Eligible) error { return nil }, nil)
		if !isChanged(err) {
			t.Errorf("%s: %v, want ErrChanged", tc.name, err)
		}
	}
	n := 0
	open := func(ctx context.Context) (Source, func() error, error) {
		v := versions[0]
		if n == 2 {
			v = h + "u1,email,a@example.com,advertising,false\n"
		}
		n++
		return notRewindable(v)
	}
	if _, err := Run(context.Background(), open, p, func(Eligible) error { return nil }, nil); !isChanged(err) {
		t.Errorf("a value vanished in pass 3: %v, want ErrChanged", err)
	}
}

// notRewindable opens an inventory that is not a Rewinder: each pass opens it
// again.
func notRewindable(data string) (Source, func() error, error) {
	src, err := NewSource(struct{ io.Reader }{strings.NewReader(data)}, "i.csv", CSV)
	if _, ok := src.(Rewinder); ok {
		panic("a Rewinder")
	}
	return src, func() error { return nil }, err
}

// TestRewindReadsOneVersion: a file replaced (renamed over) between the
// passes is still read in the version first opened, for all three passes,
// so a busy inventory never fails a load.
func TestRewindReadsOneVersion(t *testing.T) {
	p := mustPolicy(t, Config{Normalizer: normalize.Rules{}})
	dir := t.TempDir()
	path := filepath.Join(dir, "inventory.csv")
	const h = "user_id,kind,value,purposes,opted_out\n"
	v1 := h + "u1,email,a@example.com,advertising,false\nu1,phone,+14155550100,advertising,false\n"
	v2 := h + "u1,email,a@example.com,advertising,true\n"
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	opens := 0
	open := func(context.Context) (Source, func() error, error) {
		opens++
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		src, err := NewSource(f, "inventory.csv", CSV)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return &replaceOnRewind{Source: src, path: path, data: v2}, f.Close, nil
	}
	n := 0
	sum, err := Run(context.Background(), open, p, func(Eligible) error { n++; return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if opens != 1 || n != 2 || sum.EligibleIdentifiers != (Identifiers{Email: 1, Phone: 1}) {
		t.Errorf("%d opens, %d yielded, %+v; want one open and the first version's 2 identifiers", opens, n, sum)
	}
}

// replaceOnRewind replaces the file at path with data before each Rewind,
// as an operator's atomic update would between two passes.
type replaceOnRewind struct {
	Source
	path, data string
}

func (r *replaceOnRewind) Rewind(ctx context.Context) error {
	tmp := r.path + ".new"
	if err := os.WriteFile(tmp, []byte(r.data), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return err
	}
	return r.Source.(Rewinder).Rewind(ctx)
}
