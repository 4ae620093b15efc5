package psi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/psimatch/psimatch/internal/synth"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/normalize"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// referenceSet codes prefixes the way BuildSet did before it streamed: all
// of them in memory, truncated, then setcodec.Encode.
func referenceSet(t *testing.T, ps []Prefix, bits uint) []byte {
	t.Helper()
	vals := make([]setcodec.Value, len(ps))
	for i := range ps {
		vals[i] = setcodec.Truncate(ps[i][:], bits)
	}
	enc, err := setcodec.Encode(vals, bits)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

func withSpillParams(t *testing.T, bucketBits uint, chunk int) {
	t.Helper()
	oldBits, oldChunk := spillBucketBits, spillChunk
	spillBucketBits, spillChunk = bucketBits, chunk
	t.Cleanup(func() { spillBucketBits, spillChunk = oldBits, oldChunk })
}

// TestBuildSetStreamsSameBytes: the streamed build (prefixes partitioned to
// a file, coded bucket by bucket) gives byte for byte the set that coding
// all prefixes in memory gives, with the default partition and with tiny
// chunks that make every bucket span many chunks of the file; and it leaves
// no file behind in its spill directory.
func TestBuildSetStreamsSameBytes(t *testing.T) {
	cfg := synth.Config{Seed: 7, PlatformIDs: 3000, AdvertiserRows: 10, Overlap: 5}
	var inv bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		t.Fatal(err)
	}
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(t, "ristretto255", false)
	var inputs []ident.Input
	if _, err := inventory.Scan(context.Background(), bytes.NewReader(inv.Bytes()), "inv.csv", inventory.CSV, policy, func(e inventory.Eligible) error {
		inputs = append(inputs, e.Input())
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	count, members := make([]Prefix, len(inputs)), make([]Prefix, len(inputs))
	if err := k.evaluateOwn(inputs, count, members); err != nil {
		t.Fatal(err)
	}
	const rows = 1 << 20
	bits := setcodec.Bits(rows, uint64(len(inputs)))
	wantCount, wantMembers := referenceSet(t, count, bits), referenceSet(t, members, bits)

	for _, p := range []struct {
		bits  uint
		chunk int
	}{{spillBucketBits, spillChunk}, {3, 5}, {0, 7}} {
		withSpillParams(t, p.bits, p.chunk)
		dir := t.TempDir()
		var progressed atomic.Int64
		total := -1
		set, err := BuildSet(context.Background(), k, func(yield func(inventory.Eligible) error) error {
			_, err := inventory.Scan(context.Background(), bytes.NewReader(inv.Bytes()), "inv.csv", inventory.CSV, policy, yield, nil)
			return err
		}, BuildOptions{MaxClientRows: rows, SpillDir: dir,
			Progress:      func(n int) { progressed.Add(int64(n)) },
			ProgressTotal: func(n int) { total = n }})
		if err != nil {
			t.Fatal(err)
		}
		if set.Size != len(inputs) || set.Bits != bits {
			t.Fatalf("bucket bits %d: size %d bits %d, want %d %d", p.bits, set.Size, set.Bits, len(inputs), bits)
		}
		if !bytes.Equal(set.Count, wantCount) || !bytes.Equal(set.Members, wantMembers) {
			t.Fatalf("bucket bits %d chunk %d: the streamed set differs from the in-memory coding", p.bits, p.chunk)
		}
		if total != len(inputs) || progressed.Load() != int64(total) {
			t.Fatalf("ProgressTotal %d and Progress summing to %d, want %d", total, progressed.Load(), len(inputs))
		}
		left, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("BuildSet left %d files in its spill directory", len(left))
		}
	}
}

// TestSpillRepeatsChangeRiceParam plants outputs that agree in their top
// bits so heavily that the distinct count moves the Rice parameter: the
// build codes again with the true count and still matches setcodec.Encode.
func TestSpillRepeatsChangeRiceParam(t *testing.T) {
	withSpillParams(t, 4, 3)
	sp, err := newSpill(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	distinct := make([]Prefix, 40)
	for i := range distinct {
		binary.BigEndian.PutUint64(distinct[i][:8], rng.Uint64())
		binary.BigEndian.PutUint64(distinct[i][8:], rng.Uint64())
	}
	all := make([]Prefix, 1000)
	for i := range all {
		all[i] = distinct[rng.IntN(len(distinct))]
	}
	for lo := 0; lo < len(all); lo += 64 {
		hi := min(lo+64, len(all))
		if err := sp.add(all[lo:hi], all[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	const bits = 60
	if _, _, err := sp.encode(0, bits, uint64(len(all))); !errors.Is(err, setcodec.ErrEncoderCount) {
		t.Fatalf("first pass: %v, want ErrEncoderCount (the test must move the Rice parameter)", err)
	}
	got, err := encodeSpilled(sp, 0, bits)
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceSet(t, slices.Clone(all), bits); !bytes.Equal(got, want) {
		t.Fatal("the recoded set differs from setcodec.Encode")
	}
}

// TestBuildSetSpillDirUnusable: a spill directory that cannot be written is
// an error naming it, before any identifier is evaluated.
func TestBuildSetSpillDirUnusable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	k := testKey(t, "ristretto255", false)
	scanned := false
	_, err := BuildSet(context.Background(), k, func(yield func(inventory.Eligible) error) error {
		scanned = true
		return nil
	}, BuildOptions{SpillDir: dir})
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want one naming %s", err, dir)
	}
	if scanned {
		t.Fatal("the inventory was scanned although the build could not spill")
	}
}

// TestBuildSetSpillWriteFails: when the spill file cannot be written (here:
// closed under the build, as a full or vanished disk would fail it), the
// build stops with an error naming the directory instead of a set.
func TestBuildSetSpillWriteFails(t *testing.T) {
	withSpillParams(t, 0, 1) // every prefix is written at once
	dir := t.TempDir()
	sp, err := newSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	sp.f.Close()
	err = sp.add(make([]Prefix, 1), make([]Prefix, 1))
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v, want a write error naming %s", err, dir)
	}
}

// TestBuildSetStopsWhenSpillFails: the spill file fails its writes midway
// (as a full disk would: here it was opened read-only) while the scan and
// the evaluating workers are running. BuildSet returns an error naming the
// directory, without a set and without hanging, and stops the scan.
func TestBuildSetStopsWhenSpillFails(t *testing.T) {
	withSpillParams(t, 2, 4)
	dir := t.TempDir()
	old := createSpillFile
	t.Cleanup(func() { createSpillFile = old })
	createSpillFile = func(dir string) (*os.File, error) {
		f, err := os.CreateTemp(dir, "ro-*.spill")
		if err != nil {
			return nil, err
		}
		f.Close()
		return os.Open(f.Name())
	}
	cfg := synth.Config{Seed: 9, PlatformIDs: 20000, AdvertiserRows: 10, Overlap: 5}
	var inv bytes.Buffer
	if err := synth.WriteInventory(&inv, cfg); err != nil {
		t.Fatal(err)
	}
	policy, err := inventory.NewPolicy(inventory.Config{Normalizer: normalize.Rules{}})
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(t, "ristretto255", false)
	yielded := 0
	set, err := BuildSet(context.Background(), k, func(yield func(inventory.Eligible) error) error {
		_, err := inventory.Scan(context.Background(), bytes.NewReader(inv.Bytes()), "inv.csv", inventory.CSV, policy, func(e inventory.Eligible) error {
			yielded++
			return yield(e)
		}, nil)
		return err
	}, BuildOptions{SpillDir: dir})
	if set != nil || err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("set %v, err %v; want no set and an error naming %s", set != nil, err, dir)
	}
	if yielded >= 14000 {
		t.Errorf("the scan went on to the end (%d eligible) after the spill failed", yielded)
	}
	t.Log(err)
}

// TestSpillFileUnlinkedAtOnce: on systems that allow it the spill file has
// no name while the build runs, so a killed server leaves nothing behind.
func TestSpillFileUnlinkedAtOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("an open file cannot be removed on Windows: it is removed at Close")
	}
	dir := t.TempDir()
	sp, err := newSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := sp.add(make([]Prefix, 600), make([]Prefix, 600)); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("the spill file is visible in %s while in use", dir)
	}
}
