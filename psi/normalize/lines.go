package normalize

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"github.com/psimatch/psimatch/psi/ident"
)

// MaxLineLength is the longest line, in bytes without its line break, that
// Lines normalizes. A longer line is reported invalid with
// ErrLineTooLong and skipped without being held in memory. No email address
// or phone number comes near it.
const MaxLineLength = 64 << 10

// ErrLineTooLong is the reason Lines gives for a line longer than
// MaxLineLength.
var ErrLineTooLong = errors.New("normalize: line longer than " + strconv.Itoa(MaxLineLength) + " bytes")

// LineOptions says how Lines treats each line.
type LineOptions struct {
	// ident.Kind is the kind of every line.
	Kind ident.Kind
	// DefaultRegion is passed to Phone ("" for none).
	DefaultRegion string
	// Hash writes the SHA-256 of each normalized value in lowercase hex
	// instead of the value.
	Hash bool
	// Invalid, if not nil, is called for each invalid line in line order,
	// on the goroutine that called Lines, with the line's number
	// (the first line is 1) and the reason, one of this package's errors.
	Invalid func(line int64, reason error)
	// Workers is the number of goroutines that normalize; 0 means
	// runtime.GOMAXPROCS(0). Output order never depends on it.
	Workers int
}

// LineStats counts what Lines did.
type LineStats struct {
	Lines   int64 // lines read
	Invalid int64 // lines that were invalid, written as empty lines
}

// Batching: a batch is at most batchLines lines or about batchBytes of input,
// and 2*workers+1 batches exist, which bounds the memory Lines uses
// whatever the input's length.
const (
	batchLines = 1024
	batchBytes = 64 << 10
)

// Lines reads src one line at a time and writes to dst exactly one
// line per input line, in the same order: the normalized value (or its hash,
// see LineOptions.Hash), or an empty line if the input line is invalid.
//
// A line ends at "\n"; one "\r" before it is removed too, so CRLF files work.
// The last line needs no line break, and an input that ends with a line break
// has no empty line after it. Everything else on a line, leading and trailing
// spaces included, is the value.
//
// Lines are normalized in parallel in batches, in memory bounded by the batch
// size and the worker count, whatever the length of the input. dst is written
// in batches; wrap it in a bufio.Writer only if that is still too often.
// The error is a read or write error, never an invalid line: those are
// counted, and reported through LineOptions.Invalid.
func Lines(dst io.Writer, src io.Reader, opts LineOptions) (LineStats, error) {
	if !opts.Kind.Valid() {
		return LineStats{}, ident.ErrUnknownKind
	}
	region := ""
	if opts.Kind == ident.Phone {
		var err error
		if region, err = canonicalRegion(opts.DefaultRegion); err != nil {
			return LineStats{}, err
		}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}

	// Every batch is always in exactly one of: free, or on its way through
	// work (to a worker) and order (to the writer). The channels can hold
	// all batches, so no send below ever blocks.
	n := 2*workers + 1
	free := make(chan *batch, n)
	work := make(chan *batch, n)
	order := make(chan *batch, n)
	stop := make(chan struct{})
	for range n {
		free <- &batch{done: make(chan struct{}, 1)}
	}

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range work {
				b.normalize(opts.Kind, region, opts.Hash)
				b.done <- struct{}{}
			}
		})
	}
	var readErr error // written by the reader before it closes order
	go func() {
		defer close(order)
		defer close(work)
		readErr = readBatches(src, free, stop, func(b *batch) {
			work <- b
			order <- b
		})
	}()

	var stats LineStats
	var writeErr error
	for b := range order {
		<-b.done
		if writeErr == nil {
			stats.Lines += int64(len(b.ends))
			stats.Invalid += int64(len(b.bad))
			if opts.Invalid != nil {
				for _, bad := range b.bad {
					opts.Invalid(b.first+int64(bad.index), bad.reason)
				}
			}
			if _, err := dst.Write(b.out); err != nil {
				writeErr = fmt.Errorf("normalize: writing output: %w", err)
				close(stop)
			}
		}
		free <- b
	}
	wg.Wait()
	if writeErr != nil {
		return stats, writeErr
	}
	return stats, readErr
}

// batch is a run of consecutive input lines and their output.
type batch struct {
	first int64  // number of the first line
	data  []byte // the lines' bytes, without line breaks
	ends  []int  // end of each line in data
	long  []bool // whether each line was longer than MaxLineLength (and is absent from data)
	out   []byte // the output lines
	bad   []badLine
	done  chan struct{} // receives once the batch is normalized
}

type badLine struct {
	index  int // within the batch
	reason error
}

// readBatches fills free batches with lines from src and passes each to send,
// until the end of src, a read error (returned), or stop.
func readBatches(src io.Reader, free <-chan *batch, stop <-chan struct{}, send func(*batch)) error {
	br := bufio.NewReaderSize(src, MaxLineLength+2) // the longest line, "\r" and "\n"
	next := int64(1)
	for {
		var b *batch
		select {
		case b = <-free:
		case <-stop:
			return nil
		}
		b.first = next
		b.data, b.ends, b.long, b.out, b.bad = b.data[:0], b.ends[:0], b.long[:0], b.out[:0], b.bad[:0]
		var err error
		for len(b.ends) < batchLines && len(b.data) < batchBytes && err == nil {
			var s []byte
			s, err = br.ReadSlice('\n')
			long := false
			for err == bufio.ErrBufferFull {
				long = true // skip the rest of the line without holding it
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				break // a line cut short by a read error is not a line
			}
			if len(s) == 0 && !long {
				break // end of input right after a line break
			}
			if !long {
				if s[len(s)-1] == '\n' {
					s = s[:len(s)-1]
				}
				if len(s) > 0 && s[len(s)-1] == '\r' {
					s = s[:len(s)-1]
				}
				long = len(s) > MaxLineLength
			}
			if !long {
				b.data = append(b.data, s...)
			}
			b.ends = append(b.ends, len(b.data))
			b.long = append(b.long, long)
			next++
		}
		if len(b.ends) > 0 {
			send(b)
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("normalize: reading line %d: %w", next, err)
		}
	}
}

// normalize fills b.out and b.bad from b's lines.
func (b *batch) normalize(k ident.Kind, region string, hash bool) {
	start := 0
	for i, end := range b.ends {
		line := b.data[start:end]
		start = end
		var v string
		err := ErrLineTooLong
		if !b.long[i] {
			v, err = Value(k, string(line), region)
		}
		switch {
		case err != nil:
			b.bad = append(b.bad, badLine{index: i, reason: err})
		case hash:
			sum := sha256.Sum256([]byte(v))
			b.out = hex.AppendEncode(b.out, sum[:])
		default:
			b.out = append(b.out, v...)
		}
		b.out = append(b.out, '\n')
	}
}
