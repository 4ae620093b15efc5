package store

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCertHosts(t *testing.T) {
	was := localAddrs
	t.Cleanup(func() { localAddrs = was })
	localAddrs = func() (string, []net.IP) {
		return "psi-host", []net.IP{net.ParseIP("192.0.2.7"), net.ParseIP("2001:db8::7")}
	}
	all := []string{"localhost", "127.0.0.1", "::1", "psi-host", "192.0.2.7", "2001:db8::7"}
	tests := []struct {
		in, want []string
	}{
		{nil, []string{"localhost", "127.0.0.1"}},
		{[]string{""}, []string{"localhost", "127.0.0.1"}},
		{[]string{"0.0.0.0"}, all},
		{[]string{"[::]"}, all},
		{[]string{"0.0.0.0", "psi.example.com", "127.0.0.2"}, append(all[:len(all):len(all)], "psi.example.com", "127.0.0.2")},
		{[]string{"PSI.example.com.", "10.0.0.1"}, []string{"psi.example.com", "10.0.0.1"}},
		{[]string{"127.0.0.1"}, []string{"127.0.0.1", "localhost"}},
		{[]string{"[::1]"}, []string{"::1", "localhost"}},
	}
	for _, tt := range tests {
		if got := certHosts(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("certHosts(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The real machine: the host name and a non-loopback address are there.
	localAddrs = was
	name, ips := localAddrs()
	got := certHosts([]string{"0.0.0.0"})
	if name != "" && !slices.Contains(got, strings.ToLower(name)) {
		t.Errorf("%q lacks the host name %q", got, name)
	}
	for _, ip := range ips {
		if !slices.Contains(got, ip.String()) {
			t.Errorf("%q lacks the address %s", got, ip)
		}
	}
}

func TestValidHostName(t *testing.T) {
	for h, want := range map[string]bool{
		"psi.example.com": true, "localhost": true, "psi-1.example.com.": true, "127.0.0.2": true, "::1": true, "2001:db8::7": true,
		"": false, "psi_1.example.com": false, "-psi.example.com": false, "psi..example.com": false, "psi.example.com:8443": false,
		"bücher.example": false, "a b": false, strings.Repeat("a", 64) + ".com": false,
	} {
		if got := ValidHostName(h); got != want {
			t.Errorf("ValidHostName(%q) = %v", h, got)
		}
	}
	// A host name a certificate cannot hold is left out of the wildcard's names.
	was := localAddrs
	t.Cleanup(func() { localAddrs = was })
	localAddrs = func() (string, []net.IP) { return "bad_host", nil }
	if got := certHosts([]string{"::"}); slices.Contains(got, "bad_host") {
		t.Errorf("%q", got)
	}
}

func TestFingerprint(t *testing.T) {
	d := openTemp(t)
	certFile, keyFile, _, err := d.SelfSignedCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	fp := Fingerprint(pair.Certificate[0])
	sum := sha256.Sum256(pair.Certificate[0])
	if fp != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("fingerprint %s", fp)
	}
	cfg := TLSConfig(pair)
	for _, id := range cfg.CipherSuites {
		if s := tls.CipherSuiteName(id); !strings.Contains(s, "GCM") && !strings.Contains(s, "CHACHA20_POLY1305") {
			t.Errorf("TLS 1.2 suite %s is not AEAD", s)
		}
	}
	// A TLS 1.2 client that offers only CBC suites is refused.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{
		InsecureSkipVerify: true, // the handshake must fail before verification matters
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA},
	})
	if err == nil {
		conn.Close()
		t.Fatal("a CBC-only TLS 1.2 client was served")
	}
}

func TestSelfSignedCert(t *testing.T) {
	d := openTemp(t)
	certFile, keyFile, created, err := d.SelfSignedCert([]string{"0.0.0.0"})
	if err != nil || !created {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(pair.Certificate[0])
	if cert.VerifyHostname("localhost") != nil || cert.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("certificate does not cover localhost and 127.0.0.1: %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if d := time.Until(cert.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("valid for %v, want a year", d)
	}

	// A client that trusts cert.pem can talk to a server using the pair.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("TLS handshake with the self-signed certificate: %v", err)
	}
	resp.Body.Close()

	// Reused while it covers the hosts.
	before, _ := os.ReadFile(certFile)
	if _, _, created, err := d.SelfSignedCert([]string{"127.0.0.1"}); err != nil || created {
		t.Errorf("second call: created %v, %v; want reuse", created, err)
	}
	if after, _ := os.ReadFile(certFile); string(after) != string(before) {
		t.Error("certificate changed on reuse")
	}
	// Replaced when a host is not covered.
	if _, _, created, err := d.SelfSignedCert([]string{"psi.example.com"}); err != nil || !created {
		t.Errorf("new host: created %v, %v; want a new certificate", created, err)
	}
	pair, _ = tls.LoadX509KeyPair(certFile, keyFile)
	cert, _ = x509.ParseCertificate(pair.Certificate[0])
	if cert.VerifyHostname("psi.example.com") != nil {
		t.Errorf("new certificate does not cover psi.example.com: %v", cert.DNSNames)
	}
}

func TestSelfSignedCertReplaced(t *testing.T) {
	d := openTemp(t)
	certFile, keyFile, _, err := d.SelfSignedCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Expiring within the renewal window.
	certPEM, keyPEM, err := newSelfSigned([]string{"localhost", "127.0.0.1"}, time.Now().Add(-360*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, certPEM, 0o644)
	os.WriteFile(keyFile, keyPEM, 0o600)
	if _, _, created, err := d.SelfSignedCert(nil); err != nil || !created {
		t.Errorf("expiring certificate: created %v, %v; want replaced", created, err)
	}
	// A key that does not match the certificate (crash between the writes).
	_, otherKey, _ := newSelfSigned([]string{"localhost"}, time.Now())
	os.WriteFile(keyFile, otherKey, 0o600)
	if _, _, created, err := d.SelfSignedCert(nil); err != nil || !created {
		t.Errorf("mismatched key: created %v, %v; want replaced", created, err)
	}
	// A key readable by others is refused, not replaced.
	os.Chmod(keyFile, 0o644)
	if _, _, _, err := d.SelfSignedCert(nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
}

// TestWildcardCertStable: a certificate for a wildcard listen is reused on
// the next start (its fingerprint, which advertisers pinned, stays), and is
// re-issued when a --tls-host name is added.
func TestWildcardCertStable(t *testing.T) {
	d := openTemp(t)
	certFile, _, created, err := d.SelfSignedCert([]string{"0.0.0.0"})
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	before, _ := os.ReadFile(certFile)
	if _, _, created, err := d.SelfSignedCert([]string{"0.0.0.0"}); err != nil || created {
		t.Fatalf("restart: created %v, %v; want the same certificate", created, err)
	}
	if after, _ := os.ReadFile(certFile); string(after) != string(before) {
		t.Fatal("the certificate changed on restart")
	}
	if _, _, created, err := d.SelfSignedCert([]string{"0.0.0.0", "psi.example.com"}); err != nil || !created {
		t.Fatalf("added name: created %v, %v; want a new certificate", created, err)
	}
}
