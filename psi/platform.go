package psi

import (
	"context"
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
func BuildSet(ctx context.Context, key *Key, scan func(yield func(inventory.Eligible) error) error, opt BuildOptions) (*PlatformSet, error) {
	if opt.MaxClientRows == 0 {
		opt.MaxClientRows = DefaultMaxClientRows
	}
	type result struct{ count, members []Prefix }
	batches := make(chan []ident.Input, runtime.GOMAXPROCS(0))
	results := make(chan result, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	var evalErr error
	var errOnce sync.Once
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for in := range batches {
				r := result{make([]Prefix, len(in)), make([]Prefix, len(in))}
				if err := key.evaluateRange(in, r.count, r.members); err != nil {
					errOnce.Do(func() { evalErr = err })
					continue
				}
				if opt.Progress != nil {
					opt.Progress(len(in))
				}
				results <- r
			}
		}()
	}
	var count, members []Prefix
	gathered := make(chan struct{})
	go func() {
		for r := range results {
			count = append(count, r.count...)
			members = append(members, r.members...)
		}
		close(gathered)
	}()

	batch := make([]ident.Input, 0, buildBatch)
	scanErr := scan(func(e inventory.Eligible) error {
		batch = append(batch, e.Input())
		if len(batch) == buildBatch {
			select {
			case batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]ident.Input, 0, buildBatch)
		}
		return nil
	})
	if scanErr == nil && len(batch) > 0 {
		batches <- batch
	}
	close(batches)
	wg.Wait()
	close(results)
	<-gathered
	if scanErr != nil {
		return nil, scanErr
	}
	if evalErr != nil {
		return nil, evalErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return encodeSet(key, count, members, opt.MaxClientRows)
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

// encodeSet truncates the prefixes to the set's bit length and codes them.
func encodeSet(key *Key, count, members []Prefix, maxClientRows uint64) (*PlatformSet, error) {
	n := len(count)
	bits := setcodec.Bits(maxClientRows, uint64(n))
	if bits > setcodec.MaxBits {
		return nil, fmt.Errorf("psi: a set of %d identifiers for lists of %d rows needs %d-bit outputs, above the limit of %d", n, maxClientRows, bits, setcodec.MaxBits)
	}
	ps := &PlatformSet{Suite: key.suite.Name(), Epoch: key.epoch, Size: n, Bits: bits, MaxClientRows: maxClientRows}
	var err error
	if ps.Count, err = encodePrefixes(count, bits); err != nil {
		return nil, err
	}
	if ps.Members, err = encodePrefixes(members, bits); err != nil {
		return nil, err
	}
	return ps, nil
}

// encodePrefixes truncates in place into Values and codes them, so the
// prefixes' memory is released as soon as the coded set exists.
func encodePrefixes(ps []Prefix, bits uint) ([]byte, error) {
	vals := make([]setcodec.Value, len(ps))
	for i := range ps {
		vals[i] = setcodec.Truncate(ps[i][:], bits)
	}
	return setcodec.Encode(vals, bits)
}
