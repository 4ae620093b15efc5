package server

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psimatch/psimatch/protocol"
	"github.com/psimatch/psimatch/psi"
	"github.com/psimatch/psimatch/psi/ident"
)

// TestPipelinedClientOverlapsSetDownload: the client's batches do not wait
// for the set. The set answer is held back until an evaluate request has
// arrived; a client that fetched the set before evaluating (the sequential
// client) would get a 503 after a minute instead and fail. The pipelined
// match completes with the planted matches, in members mode (many batches)
// and in count mode.
func TestPipelinedClientOverlapsSetDownload(t *testing.T) {
	f := newFixture(t, false)
	inner := f.srv.Handler()
	var once sync.Once
	evaluating := make(chan struct{})
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/evaluate"):
			once.Do(func() { close(evaluating) })
		case strings.HasSuffix(r.URL.Path, "/set"):
			select {
			case <-evaluating:
			case <-time.After(time.Minute): // only a failing client waits this long
				http.Error(w, "the set was asked for before any batch", http.StatusServiceUnavailable)
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()

	c := &protocol.Client{Server: ts.URL, Token: f.tokens["member"], HTTP: ts.Client()}
	rep, err := c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if err != nil {
		t.Fatal(err)
	}
	if *rep.MatchedRows != f.truth.Overlap || rep.Matched.Email != f.truth.OverlapKinds["email"] || rep.Matched.Phone != f.truth.OverlapKinds["phone"] {
		t.Fatalf("members: matched rows %d %+v, planted %d %v", *rep.MatchedRows, rep.Matched, f.truth.Overlap, f.truth.OverlapKinds)
	}
	// Row by row, the pipelined answer is the one the step-by-step API gives.
	sess, err := c.Open(context.Background(), psi.ModeMembers, rep.Sent)
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := sess.Set(context.Background(), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ident.Kinds {
		in := f.list.Inputs.Get(k)
		for lo := 0; lo < len(in); lo += sess.Info.MaxBatch {
			hi := min(len(in), lo+sess.Info.MaxBatch)
			got, err := sess.Batch(context.Background(), set, k, in[lo:hi])
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range got {
				row := -1
				for r := range f.list.Rows {
					if f.list.RowInput(k, r) == lo+i {
						row = r
						break
					}
				}
				has := false
				for _, rk := range rep.RowMatches[row] {
					has = has || rk == k
				}
				if has != m {
					t.Fatalf("%s input %d (row %d): pipelined %v, step by step %v", k, lo+i, row, has, m)
				}
			}
		}
	}

	c = &protocol.Client{Server: ts.URL, Token: f.tokens["counter"], HTTP: ts.Client()}
	rep, err = c.Match(context.Background(), f.list, protocol.MatchOptions{Mode: psi.ModeCount})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched.Email != f.truth.OverlapKinds["email"] || rep.Matched.Phone != f.truth.OverlapKinds["phone"] {
		t.Fatalf("count: matched %+v, planted %v", rep.Matched, f.truth.OverlapKinds)
	}
}

// TestPipelinedClientCancel: the caller cancels the match while a batch is
// being evaluated. Match returns an error wrapping context.Canceled, no
// report, and none of its pipeline's goroutines stays behind.
func TestPipelinedClientCancel(t *testing.T) {
	f := newFixture(t, false)
	inner := f.srv.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/evaluate") {
			io.Copy(io.Discard, r.Body) // so the server notices the client leaving
			cancel()
			<-r.Context().Done() // the client gives up on this request
			return
		}
		inner.ServeHTTP(w, r)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	c := &protocol.Client{Server: ts.URL, Token: f.tokens["member"], HTTP: ts.Client()}
	rep, err := c.Match(ctx, f.list, protocol.MatchOptions{Mode: psi.ModeMembers})
	if rep != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("report %v, error %v; want no report and context.Canceled", rep != nil, err)
	}
	deadline := time.Now().Add(time.Minute) // a bound for a failing run only, far above a loaded machine's
	for strings.Contains(goroutineDump(), "runPipeline") {
		if time.Now().After(deadline) {
			t.Fatalf("pipeline goroutines left behind:\n%s", goroutineDump())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
