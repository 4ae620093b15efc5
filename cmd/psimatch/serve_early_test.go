//go:build unix

package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/psimatch/psimatch/internal/advertisers"
	"github.com/psimatch/psimatch/psi"
)

// TestServeFailsBeforeReadingInventory: a busy port and bad TLS flags are
// refused before the inventory is read. The inventory is a named pipe that
// no one writes: reading it would block, so a server that read first would
// never return.
func TestServeFailsBeforeReadingInventory(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "inventory.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	adv := filepath.Join(dir, "advertisers.json")
	if _, err := advertisers.Add(adv, advertisers.Advertiser{Name: "a", Modes: []psi.Mode{psi.ModeCount}, MinRows: 1, SessionsPerDay: 1}); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, c := range []struct {
		name string
		o    serveOptions
		want string
		code int
	}{
		{"busy port", serveOptions{listen: busy.Addr().String()}, "address already in use", exitUsage},
		{"busy metrics port", serveOptions{listen: "127.0.0.1:0", metricsListen: busy.Addr().String()}, "address already in use", exitUsage},
		{"--tls-cert without --tls-key", serveOptions{listen: "127.0.0.1:0", tlsCert: "cert.pem"}, "go together", exitUsage},
		{"--tls-host with --plaintext", serveOptions{listen: "127.0.0.1:0", plaintext: true, tlsHosts: []string{"psi.test"}}, "--plaintext", exitUsage},
		{"a certificate file that is not there", serveOptions{listen: "127.0.0.1:0", tlsCert: filepath.Join(dir, "no.pem"), tlsKey: filepath.Join(dir, "no.key")}, "no.pem", exitInput},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := c.o
			o.inventory, o.dataDir, o.advertisers = fifo, filepath.Join(dir, "data"), adv
			o.rotate, o.suite, o.maxClientRows, o.quiet = 24*time.Hour, "ristretto255", 1<<24, true
			done := make(chan error, 1)
			go func() {
				rs, err := startServer(context.Background(), o, io.Discard, io.Discard)
				if rs != nil {
					rs.shutdown()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute): // a bound for the failure, not a margin: an honest run returns at once
				t.Fatal("startServer is reading the inventory before checking its port and flags")
			}
			var ue *userError
			if err == nil || !strings.Contains(err.Error(), c.want) || !asUserError(err, &ue) || ue.status != c.code {
				t.Fatalf("got %v, want exit %d and %q", err, c.code, c.want)
			}
		})
	}
}

func asUserError(err error, ue **userError) bool {
	e, ok := err.(*userError)
	*ue = e
	return ok
}
