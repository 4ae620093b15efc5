package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/internal/synth"
)

// TestServeSpeaksHTTP2AndHTTP1: the server negotiates HTTP/2 over TLS and
// still answers HTTP/1.1 clients, with its self-signed certificate.
func TestServeSpeaksHTTP2AndHTTP1(t *testing.T) {
	dir := t.TempDir()
	if _, err := writeDemoData(filepath.Join(dir, "inv.csv"), filepath.Join(dir, "list.csv"), synth.Config{Seed: 1, PlatformIDs: 200, AdvertiserRows: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := advertisers.Add(filepath.Join(dir, "adv.json"), advertisers.Advertiser{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	rs, err := startServer(context.Background(), serveOptions{
		inventory: filepath.Join(dir, "inv.csv"), dataDir: filepath.Join(dir, "data"), advertisers: filepath.Join(dir, "adv.json"),
		listen: "127.0.0.1:0", rotate: time.Hour, suite: "ristretto255", quiet: true,
	}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.shutdown()
	pem, _ := os.ReadFile(rs.certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		resp, err := (&http.Client{Transport: tr}).Get(rs.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want || resp.StatusCode != 200 {
			t.Fatalf("h2=%v: %s %d", h2, resp.Proto, resp.StatusCode)
		}
	}
}
