package psi

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// PrefixSize is how much of each output the platform keeps while building
// its set: 128 bits, more than any truncation the set codec uses.
const PrefixSize = 16

// Prefix is the first PrefixSize bytes of an output.
type Prefix [PrefixSize]byte

// DefaultMaxClientRows is the largest advertiser list the set's truncation
// is sized for unless the operator says otherwise (2^24 rows).
const DefaultMaxClientRows = 1 << 24

// PlatformSet is the platform's matchable set for one epoch: the outputs of
// every eligible identifier, truncated and coded by psi/setcodec, once for
// count mode and once for members mode. It holds only the coded bytes.
type PlatformSet struct {
	Suite         string // RFC 9497 suite identifier
	Epoch         string
	Size          int    // distinct eligible identifiers
	Bits          uint   // truncation of each output, in bits
	MaxClientRows uint64 // the client list size the truncation is sized for
	Count         []byte // setcodec encoding of the count-mode outputs
	Members       []byte // setcodec encoding of the members-mode outputs
}

// BuildOptions tunes BuildSet.
type BuildOptions struct {
	// MaxClientRows bounds the rows of one advertiser session; the outputs
	// are truncated so that a session's chance of one false match stays
	// below 2^-40. Zero means DefaultMaxClientRows.
	MaxClientRows uint64
	// Progress, if set, is called from the evaluating goroutines with the
	// number of identifiers just evaluated.
	Progress func(n int)
	// ProgressTotal, if set, is called once, when the scan has ended, with
	// the number of identifiers to evaluate (the total of Progress's counts).
	ProgressTotal func(total int)
	// SpillDir is where the build keeps its temporary file of output
	// prefixes (32 bytes per identifier, removed when BuildSet returns; on
	// Unix it is unlinked as soon as it is created). Empty means
	// os.TempDir(). The server passes its data directory.
	SpillDir string
}

// buildBatch is how many eligible identifiers travel together from the
// inventory scan to an evaluating worker.
const buildBatch = 512

// BuildSet evaluates every eligible identifier that scan yields under the
// epoch key and returns the epoch's set. scan is the policy filter's stream,
// such as
//
//	func(yield func(inventory.Eligible) error) error {
//		_, err := inventory.Run(ctx, src, policy, yield, onInvalid)
//		return err
//	}
//
// BuildSet accepts inventory.Eligible and nothing else: only the purpose
// policy makes those, so no other path can put an identifier into the set.
// Each identifier must be yielded once (inventory.Run does so). Scanning and
// evaluation overlap: the scan runs in the caller's goroutine while
// GOMAXPROCS workers evaluate the batches it fills.
//
// Memory does not grow with the inventory beyond the coded sets: the
// outputs' 128-bit prefixes are partitioned by their top bits into a
// temporary file in opt.SpillDir as they are evaluated, then read back,
// sorted and coded one bucket at a time (see spill.go). Besides the coded
// sets the build holds about 2 MiB of partition buffers, the batches in
// flight (about 3 · GOMAXPROCS batches of 512 identifiers) and one bucket
// (32 bytes per 256 identifiers).
func BuildSet(ctx context.Context, key *Key, scan func(yield func(inventory.Eligible) error) error, opt BuildOptions) (*PlatformSet, error) {
	if opt.MaxClientRows == 0 {
		opt.MaxClientRows = DefaultMaxClientRows
	}
	sp, err := newSpill(opt.SpillDir)
	if err != nil {
		return nil, err
	}
	defer sp.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type result struct{ count, members []Prefix }
	workers := runtime.GOMAXPROCS(0)
	batches := make(chan []ident.Input, workers)
	results := make(chan result, workers)
	free := make(chan result, 2*workers) // prefix buffers handed back by the partition
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range batches {
				var r result
				select {
				case r = <-free:
				default:
					r = result{make([]Prefix, buildBatch), make([]Prefix, buildBatch)}
				}
				r.count, r.members = r.count[:len(in)], r.members[:len(in)]
				if err := key.evaluateRange(in, r.count, r.members); err != nil {
					cancel(err)
					continue
				}
				if opt.Progress != nil {
					opt.Progress(len(in))
				}
				results <- r
			}
		}()
	}
	partitioned := make(chan struct{})
	go func() {
		defer close(partitioned)
		for r := range results {
			if context.Cause(ctx) == nil {
				if err := sp.add(r.count, r.members); err != nil {
					cancel(err)
				}
			}
			select {
			case free <- result{r.count[:cap(r.count)], r.members[:cap(r.members)]}:
			default:
			}
		}
	}()

	total := 0
	batch := make([]ident.Input, 0, buildBatch)
	send := func() error {
		select {
		case batches <- batch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		total += len(batch)
		batch = make([]ident.Input, 0, buildBatch)
		return nil
	}
	scanErr := scan(func(e inventory.Eligible) error {
		batch = append(batch, e.Input())
		if len(batch) == buildBatch {
			return send()
		}
		return nil
	})
	if scanErr == nil && len(batch) > 0 {
		scanErr = send()
	}
	close(batches)
	if scanErr == nil && opt.ProgressTotal != nil {
		opt.ProgressTotal(total)
	}
	wg.Wait()
	close(results)
	<-partitioned
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if scanErr != nil {
		return nil, scanErr
	}
	// The scan's state (the inventory's de-duplication keys: the largest
	// thing besides the sets that grows with the inventory) is garbage now.
	// Collect it before the coded sets are allocated, so the heap does not
	// hold both: one collection per epoch build.
	runtime.GC()
	return encodeSet(key, sp, opt.MaxClientRows)
}

// evaluateRange evaluates a batch in the calling goroutine only (BuildSet
// already runs one such call per core).
func (k *Key) evaluateRange(inputs []ident.Input, count, members []Prefix) error {
	s := k.suite
	e := s.g.NewElement()
	h := s.newHash()
	for i := range inputs {
		enc, err := e.Mul(s.hashToGroup(inputs[i][:]), k.k).MarshalBinaryCompress()
		if err != nil {
			return err
		}
		copy(count[i][:], s.countOutput(h, enc))
		copy(members[i][:], s.finalize(h, inputs[i][:], enc))
	}
	return nil
}

// encodeSet truncates the partitioned prefixes to the set's bit length and
// codes them, bucket by bucket.
func encodeSet(key *Key, sp *spill, maxClientRows uint64) (*PlatformSet, error) {
	n := sp.n
	bits := setcodec.Bits(maxClientRows, uint64(n))
	if bits > setcodec.MaxBits {
		return nil, fmt.Errorf("psi: a set of %d identifiers for lists of %d rows needs %d-bit outputs, above the limit of %d", n, maxClientRows, bits, setcodec.MaxBits)
	}
	ps := &PlatformSet{Suite: key.suite.Name(), Epoch: key.epoch, Size: n, Bits: bits, MaxClientRows: maxClientRows}
	var err error
	if ps.Count, err = encodeSpilled(sp, 0, bits); err != nil {
		return nil, err
	}
	if ps.Members, err = encodeSpilled(sp, 1, bits); err != nil {
		return nil, err
	}
	return ps, nil
}

// encodeSpilled codes one set, expecting every value distinct. Two
// identifiers whose outputs agree in all the set's bits (a chance below
// 2^-40 per session's worth) are one value; if that moves the Rice
// parameter the set is coded again with the true count.
func encodeSpilled(sp *spill, set int, bits uint) ([]byte, error) {
	out, got, err := sp.encode(set, bits, uint64(sp.n))
	if errors.Is(err, setcodec.ErrEncoderCount) {
		out, _, err = sp.encode(set, bits, got)
	}
	return out, err
}
