package protocol

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/customers"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// pipelineDepth bounds the batches between blinding and lookup at once:
// one being blinded or finalized on the client while another is on the
// wire or evaluated by the server.
const pipelineDepth = 2

// Members-mode batches are cut to about an eighth of a kind (at least
// 16384, at most 65536 elements) so the pipeline has batches to overlap;
// members mode answers in order, so the split reveals nothing. Count mode
// keeps max_batch: each of its batches is shuffled on its own, and an
// honest client sends as few as it can (protocol/README.md).
const (
	minPipelineBatch = 16384
	maxPipelineBatch = 65536
)

// batchSize is the number of elements of kind k's batches.
func batchSize(m psi.Mode, n, maxBatch int) int {
	if m.Shuffled() {
		return maxBatch
	}
	size := min(max((n+7)/8, minPipelineBatch), maxPipelineBatch)
	size = (size + psi.ProofChunk - 1) / psi.ProofChunk * psi.ProofChunk
	return max(1, min(size, maxBatch))
}

// pipeJob is one batch on its way through the pipeline.
type pipeJob struct {
	index   int
	k       ident.Kind
	lo, hi  int
	b       psi.Blinder
	blinded []byte
	ev      *psi.Evaluation
}

// runPipeline sends every identifier of list through the session and looks
// the answers up in the set, which fetchSet delivers when it is there. Up
// to pipelineDepth batches flow through blind → upload, evaluate and
// download → finalize → lookup at once, so the client's and the server's
// work overlap and memory is bounded by the batch size. It returns, per
// kind, which of the list's inputs matched (in count mode: how many, since
// the answers come back shuffled).
func (c *Client) runPipeline(ctx context.Context, sess *Session, list *customers.List, fetchSet func(context.Context) (*setcodec.Set, error), rep *Report) (ident.PerKind[[]bool], error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The error reported is the one the sequential client would meet
	// first: the set's, else the earliest batch's. A batch before the
	// failing one is still finished, so its own error can take precedence.
	var (
		mu       sync.Mutex
		firstAt  = math.MaxInt
		firstErr error
	)
	fail := func(at int, err error) {
		mu.Lock()
		if at < firstAt {
			firstAt, firstErr = at, err
		}
		mu.Unlock()
		cancel(err)
	}
	stopped := func(at int) bool { // an earlier failure makes batch at moot
		mu.Lock()
		defer mu.Unlock()
		return firstAt < at
	}

	// The set downloads and decodes while the first batches are blinded
	// and evaluated.
	var set *setcodec.Set
	setReady := make(chan struct{})
	go func() {
		defer close(setReady)
		s, err := fetchSet(ctx)
		if err != nil {
			if ctx.Err() == nil { // not the echo of a batch's failure
				fail(-1, err)
			}
			return
		}
		set = s
	}()

	var found ident.PerKind[[]bool]
	var jobs []pipeJob
	for _, k := range ident.Kinds {
		n := len(list.Inputs.Get(k))
		*found.At(k) = make([]bool, n)
		size := batchSize(sess.Mode, n, sess.Info.MaxBatch)
		for lo := 0; lo < n; lo += size {
			jobs = append(jobs, pipeJob{index: len(jobs), k: k, lo: lo, hi: min(n, lo+size)})
		}
	}

	slots := make(chan struct{}, pipelineDepth)
	toEval := make(chan *pipeJob, pipelineDepth)
	toFinal := make(chan *pipeJob, pipelineDepth)
	batchErr := func(j *pipeJob, err error) error {
		return fmt.Errorf("%s batch of %d: %w", j.k, j.hi-j.lo, err)
	}

	go func() { // blind
		defer close(toEval)
		for i := range jobs {
			j := &jobs[i]
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			b, err := psi.NewBlinder(sess.Suite, sess.Mode, sess.pk)
			if err == nil {
				j.b = b
				j.blinded, err = b.Blind(list.Inputs.Get(j.k)[j.lo:j.hi])
			}
			if err != nil {
				fail(j.index, batchErr(j, err))
				return
			}
			toEval <- j
		}
	}()

	go func() { // upload, evaluate, download
		defer close(toFinal)
		for j := range toEval {
			if stopped(j.index) {
				continue
			}
			ev, err := sess.Evaluate(ctx, j.k, j.blinded)
			j.blinded = nil
			if err != nil {
				if !stopped(j.index) {
					fail(j.index, batchErr(j, err))
				}
				continue
			}
			j.ev = ev
			toFinal <- j
		}
	}()

	// finalize and look up, in this goroutine
	done := ident.PerKind[int]{}
	for j := range toFinal {
		if stopped(j.index) {
			continue
		}
		// Open's check bounds set_bits by setcodec.MaxBits and the output size.
		q, err := psi.FinalizeTruncated(j.b, j.ev, sess.Info.SetBits)
		j.ev, j.b = nil, nil
		if err != nil {
			fail(j.index, batchErr(j, err))
			continue
		}
		select {
		case <-setReady:
		case <-ctx.Done():
			continue // set may still be being written: read it only once ready
		}
		if set == nil {
			continue
		}
		got := set.Match(q)
		copy(found.Get(j.k)[j.lo:j.hi], got)
		for _, m := range got {
			if m {
				*rep.Matched.At(j.k)++
			}
		}
		*done.At(j.k) += j.hi - j.lo
		c.progress("match "+j.k.String(), int64(done.Get(j.k)), int64(len(found.Get(j.k))))
		<-slots
	}
	<-setReady
	if firstErr != nil {
		return found, firstErr
	}
	if ctx.Err() != nil {
		return found, context.Cause(ctx)
	}
	return found, nil
}
